using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Two vCPUs switching "tasks" the way a Linux guest does: FS bases, address spaces, copy-on-write faults
/// and TLB shootdowns, each checked from ring 3 millions of times (guest/tests/fsbase.c, tlb.c, pvflush.c). They
/// were written to reproduce the 2-vCPU TLS failure of the kit's Linux on PVM hosts (guestkit/README.md) and pass
/// on Kiln: they keep the vCPU, timer, IPI and steal-time paths they exercise honest.</summary>
public sealed class SmpIsolationGuestTests(ITestOutputHelper log)
{
    private ProcessRunner.Result Boot(string cmdline)
    {
        var r = Support.Kiln.RunTestGuest(cmdline, "--cpus", "2");
        log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalMilliseconds:F0} ms\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "kiln did not finish in time");
        return r;
    }

    [KvmFact]
    public void EveryRing3FsReadUsesTheBaseRing0LastWrote()
    {
        var r = Boot("test=fsbase seconds=2 kthread=1 setfs=1 timer_us=1000");
        Assert.Matches(@"fsbase: 2 cpus ran, checks [1-9]\d* failures 0 ", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }

    [KvmFact]
    public void AddressSpaceSwitchesAndCopyOnWriteLeaveNoStaleTranslation()
    {
        var r = Boot("test=tlb seconds=2 shared=1 tasks=3 remap=1 cow=1 kthread=1 timer_us=1000 idle_every=5");
        Assert.Matches(@"tlb: 2 cpus ran, checks [1-9]\d* failures 0 ", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }

    [KvmFact]
    public void TlbShootdownReachesTheOtherVcpu()
    {
        var r = Boot("test=pvflush seconds=2");
        Assert.Matches(@"moves [1-9]\d*, .*timeouts 0\), reader reads [1-9]\d*, stale reads 0", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }
}
