using Kiln.Kvm;

namespace Kiln.Vmm;

/// <summary>Exit counts by reason, one instance per vCPU so the exit path never contends.</summary>
public sealed class ExitCounters
{
    private readonly long[] _byReason = new long[64];

    public void Count(KvmExitReason reason) => _byReason[(uint)reason & 63]++;

    public long this[KvmExitReason reason] => Volatile.Read(ref _byReason[(uint)reason & 63]);

    public static IEnumerable<(KvmExitReason Reason, long Count)> Sum(IEnumerable<ExitCounters> all)
    {
        var list = all.ToList();
        for (uint r = 0; r < 64; r++)
        {
            long total = list.Sum(c => Volatile.Read(ref c._byReason[r]));
            if (total > 0)
                yield return ((KvmExitReason)r, total);
        }
    }
}
