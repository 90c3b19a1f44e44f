using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>virsh-style save/restore and kept snapshots, end to end through `kiln` and `kiln daemon`.</summary>
public sealed class SnapshotDaemonTests(ITestOutputHelper log) : IDisposable
{
    private readonly DaemonHarness _d = new(log);

    public void Dispose() => _d.Dispose();

    private static string CounterXml(string name) => $"""
        <domain type='kvm'>
          <name>{name}</name>
          <memory unit='MiB'>32</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=counter delay_us=20000</cmdline></os>
          <devices><serial type='pty'/><console type='pty'><target type='serial' port='0'/></console></devices>
        </domain>
        """;

    private string Log(string name) => File.ReadAllText(Path.Combine(_d.StateDir, "log", name + ".log"));

    /// <summary>The guest's ticks in the domain log. A save can pause the guest mid-line ("t" before it, "ick 19" after
    /// the restore), with the VMM's stop message and the daemon's start header in between: those are cut out first.</summary>
    private static List<long> Ticks(string text)
    {
        string guest = Regex.Replace(text, @"kiln: [^\n]*\n|\n--- [^\n]* starting [^\n]*\n", "");
        return [.. Regex.Matches(guest, @"^tick (\d+)", RegexOptions.Multiline).Select(m => long.Parse(m.Groups[1].Value))];
    }

    private void WaitForTicks(string name, int atLeast)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Ticks(Log(name)).Count < atLeast)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} did not reach {atLeast} ticks:\n{Log(name)}");
            Thread.Sleep(50);
        }
    }

    [KvmFact]
    public void SaveShutsTheDomainOffAndRestoreResumesItWhereItWas()
    {
        _d.Ok("define", _d.WriteFile("c.xml", CounterXml("snap1")));
        _d.Ok("start", "snap1");
        WaitForTicks("snap1", 10);
        string file = Path.Combine(_d.Dir, "snap1.ksnap");
        Assert.Contains("saved to", _d.Ok("save", "snap1", file));
        Assert.StartsWith("shut off", _d.Ok("domstate", "snap1"));
        Assert.Contains("saved to", _d.Ok("domstate", "snap1"));
        int before = Ticks(Log("snap1")).Count;
        Assert.Contains("snapshot-verify", Support.Kiln.Run(["help", "snapshots"]).Stdout);
        Assert.Contains("ok: snapshot format 1, domain 'snap1'", Support.Kiln.Run(["snapshot-verify", file]).Stdout);

        Assert.Contains("restored", _d.Ok("restore", file));
        Assert.Matches(@"snap1\s+running", _d.Ok("list"));
        Assert.StartsWith("running (restored)", _d.Ok("domstate", "snap1"));
        WaitForTicks("snap1", before + 10);
        var ticks = Ticks(Log("snap1"));
        for (int i = 0; i < ticks.Count; i++)
            Assert.True(ticks[i] == i, $"tick {i} is {ticks[i]}: a gap or a repeat across save/restore:\n{Log("snap1")}");
        // The definition is kept: a second restore of a running domain is refused.
        var again = _d.Cli(["restore", file]);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("is running", again.Stderr);
        _d.Ok("destroy", "snap1");
    }

    [KvmFact]
    public void KeptSnapshotsListRevertAndDelete()
    {
        _d.Ok("define", _d.WriteFile("c.xml", CounterXml("snap2")));
        _d.Ok("start", "snap2");
        WaitForTicks("snap2", 5);
        int beforeSnapshot = Ticks(Log("snap2")).Count;
        Assert.Contains("snapshot 'first' created", _d.Ok("snapshot", "snap2", "--name", "first"));
        int atSnapshot = Ticks(Log("snap2")).Count;
        Assert.Matches(@"snap2\s+running", _d.Ok("list")); // a snapshot does not stop the guest
        WaitForTicks("snap2", atSnapshot + 10);
        var list = JsonDocument.Parse(_d.Ok("snapshot-list", "snap2", "--json")).RootElement;
        Assert.Equal("first", Assert.Single(list.EnumerateArray()).GetProperty("name").GetString());
        Assert.Contains("first", _d.Ok("snapshot-list", "snap2"));

        Assert.Contains("reverted", _d.Ok("snapshot-revert", "snap2", "first"));
        Assert.Matches(@"snap2\s+running", _d.Ok("list"));
        // After the revert the counter goes back to where the snapshot was taken and continues from there.
        string log = Log("snap2");
        int marker = log.LastIndexOf("starting snap2", StringComparison.Ordinal);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Ticks(Log("snap2")[marker..]).Count < 5 && DateTime.UtcNow < deadline)
            Thread.Sleep(50);
        var after = Ticks(Log("snap2")[marker..]);
        Assert.True(after.Count >= 5, Log("snap2"));
        // The guest ran on while the snapshot call returned and the log was read: the snapshot lies between.
        Assert.InRange(after[0], beforeSnapshot - 1, atSnapshot);
        for (int i = 1; i < after.Count; i++)
            Assert.Equal(after[0] + i, after[i]);

        var bad = _d.Cli(["snapshot-revert", "snap2", "nope"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("has no snapshot 'nope'", bad.Stderr);
        Assert.Contains("bad snapshot name", _d.Cli(["snapshot", "snap2", "--name", "../x"]).Stderr);
        _d.Ok("snapshot-delete", "snap2", "first");
        Assert.Equal(0, JsonDocument.Parse(_d.Ok("snapshot-list", "snap2", "--json")).RootElement.GetArrayLength());
        _d.Ok("destroy", "snap2");
    }

    [KvmFact]
    public void ACorruptSnapshotIsRefusedByTheDaemon()
    {
        string file = _d.WriteFile("junk.ksnap", "KILNSNAP but not really a snapshot");
        var r = _d.Cli(["restore", file]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("snapshot", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
