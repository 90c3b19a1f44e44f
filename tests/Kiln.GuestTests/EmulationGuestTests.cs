using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Kiln's instruction fallback, end to end: test=emulate runs x87/SSE/XSAVE state instructions,
/// CMPXCHG16B, INT3 and STAC/CLAC at ring 0. On a PVM host KVM's emulator cannot run them, so Kiln completes them;
/// QEMU+KVM cannot run this guest there.</summary>
public sealed class EmulationGuestTests(ITestOutputHelper log)
{
    [KvmFact]
    public void RingZeroStateInstructionsComplete()
    {
        var r = Support.Kiln.RunTestGuest("test=emulate", "--stats");
        log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalMilliseconds:F0} ms\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "kiln did not finish in time");
        Assert.Contains("emulate ok", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }
}
