namespace Kiln.GuestTests.Support;

/// <summary>A test that boots a guest under KVM. It skips only when /dev/kvm is absent, and says so loudly;
/// test.sh turns any skip into a failure on a machine that has /dev/kvm.</summary>
public sealed class KvmFactAttribute : FactAttribute
{
    public const string NoKvm = "SKIPPED LOUDLY: /dev/kvm is absent on this machine, so this guest test could not boot its guest";

    public KvmFactAttribute()
    {
        if (!File.Exists("/dev/kvm"))
            Skip = NoKvm;
    }
}
