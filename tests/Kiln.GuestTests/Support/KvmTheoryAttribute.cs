namespace Kiln.GuestTests.Support;

/// <summary>The theory form of <see cref="KvmFactAttribute"/>: skips loudly only when /dev/kvm is absent.</summary>
public sealed class KvmTheoryAttribute : TheoryAttribute
{
    public KvmTheoryAttribute()
    {
        if (!File.Exists("/dev/kvm"))
            Skip = KvmFactAttribute.NoKvm;
    }
}
