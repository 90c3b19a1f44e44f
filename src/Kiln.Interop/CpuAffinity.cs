using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>sched_getaffinity / sched_setaffinity for the calling thread (pid 0), with a 1024-CPU mask.</summary>
public static unsafe partial class CpuAffinity
{
    private const int MaskBytes = 128;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_getaffinity(int pid, nuint size, byte* mask);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nuint size, byte* mask);

    /// <summary>The host CPUs the calling thread may run on, in ascending order.</summary>
    public static IReadOnlyList<int> AllowedCpus()
    {
        byte* mask = stackalloc byte[MaskBytes];
        new Span<byte>(mask, MaskBytes).Clear();
        if (sched_getaffinity(0, MaskBytes, mask) != 0)
            SystemCallException.ThrowLast("sched_getaffinity");
        var cpus = new List<int>();
        for (int i = 0; i < MaskBytes * 8; i++)
            if ((mask[i / 8] & (1 << (i % 8))) != 0)
                cpus.Add(i);
        return cpus;
    }

    /// <summary>Restricts the calling thread to one host CPU.</summary>
    public static void PinCurrentThread(int cpu)
    {
        if (cpu < 0 || cpu >= MaskBytes * 8)
            throw new ArgumentOutOfRangeException(nameof(cpu));
        byte* mask = stackalloc byte[MaskBytes];
        new Span<byte>(mask, MaskBytes).Clear();
        mask[cpu / 8] = (byte)(1 << (cpu % 8));
        if (sched_setaffinity(0, MaskBytes, mask) != 0)
            SystemCallException.ThrowLast("sched_setaffinity");
    }
}
