using Kiln.GuestTests.Support;

namespace Kiln.GuestTests;

/// <summary>Spec errors only the machine builder can see (a device on another's ports) are one line too, naming what
/// the user typed; and the daemon CLI takes -c before the verb, as virsh does.</summary>
public sealed class SpecErrorGuestTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private DaemonHarness? _d;

    public void Dispose() => _d?.Dispose();

    [KvmFact]
    public void DebugExitOnCom1IsOneClearLine()
    {
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--debug-exit", "0x3f8", "--cmdline", "test=exit"]);
        Assert.Equal(1, r.ExitCode);
        var lines = r.Stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains("debugExitPort", lines[0]);
        Assert.Contains("overlaps serial", lines[0]);
    }

    [KvmFact]
    public void GlobalConnectOptionGoesBeforeTheVerb()
    {
        _d = new DaemonHarness(log);
        string file = _d.WriteFile("g.json", $$$"""{"name":"g1","memoryMiB":32,"os":{"kernel":"{{{TestGuest.Path}}}","cmdline":"test=exit"}}""");
        var define = Support.Kiln.Run(["-c", _d.Uri, "define", file]);
        Assert.True(define.ExitCode == 0, define.Stderr);
        var list = Support.Kiln.Run(["-c", _d.Uri, "list", "--all"]);
        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.Contains("g1", list.Stdout);
        var after = Support.Kiln.Run(["list", "--all", "--connect", _d.Uri]);
        Assert.Contains("g1", after.Stdout);
    }
}
