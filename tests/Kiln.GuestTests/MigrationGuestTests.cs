using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Live migration between two VMMs in two network namespaces joined by a veth pair: the `test=dirty`
/// guest keeps a tick counter, rewrites 64 MiB and re-checks a static region while it moves. A move must keep
/// every tick exactly once; a cut link, a killed destination, an abort or a guest that will not converge must
/// leave the source running and the destination gone.</summary>
public sealed partial class MigrationGuestTests(ITestOutputHelper log) : IDisposable
{
    private const string Token = "one-time-token-for-this-test";
    private readonly VethNamespaces _net = new();
    private readonly string _socket = Path.Combine(Path.GetTempPath(), $"kmig-{Guid.NewGuid():N}.sock");
    private readonly List<VmmProcess> _vmms = [];

    public void Dispose()
    {
        foreach (var v in _vmms)
        {
            log.WriteLine($"--- vmm {v.Pid} stderr\n{v.Stderr}");
            v.Dispose();
        }
        _net.Dispose();
    }

    private VmmProcess Source(string cmdline, string memory = "256M")
    {
        var p = new VmmProcess(_net.A, ["run", "--kernel", TestGuest.Path, "--memory", memory, "--cmdline", cmdline,
            "--control-socket", _socket]);
        _vmms.Add(p);
        Assert.True(p.WaitFor((o, _) => o.Contains("tick 3\n"), TimeSpan.FromSeconds(60)), "the source guest did not start ticking");
        return p;
    }

    private (VmmProcess Vmm, int Port) Destination(string cmdline, string memory = "256M", string token = Token)
    {
        var p = new VmmProcess(_net.B, ["run", "--kernel", TestGuest.Path, "--memory", memory, "--cmdline", cmdline,
            "--incoming", $"tcp:{_net.AddressB}:0"], new Dictionary<string, string> { ["KILN_MIGRATION_TOKEN"] = token });
        _vmms.Add(p);
        Assert.True(p.WaitFor((_, e) => WaitingRegex().IsMatch(e), TimeSpan.FromSeconds(60)), "the destination did not listen");
        int port = int.Parse(WaitingRegex().Match(p.Stderr).Groups[1].Value, CultureInfo.InvariantCulture);
        return (p, port);
    }

    private JsonElement Migrate(int port, int? maxDowntimeMs = null, string token = Token, int? maxRounds = null,
        int? maxBandwidthMBps = null)
    {
        string extra = (maxDowntimeMs is int ms ? $",\"maxDowntimeMs\":{ms}" : "")
                       + (maxRounds is int r ? $",\"maxRounds\":{r}" : "")
                       + (maxBandwidthMBps is int bw ? $",\"maxBandwidthMBps\":{bw}" : "");
        return VmmProcess.Control(_socket,
            $"{{\"cmd\":\"migrate\",\"uri\":\"tcp:{_net.AddressB}:{port}\",\"token\":\"{token}\"{extra}}}");
    }

    [GeneratedRegex(@"waiting for a migration on tcp:[0-9.]+:(\d+)")]
    private static partial Regex WaitingRegex();

    [GeneratedRegex(@"tick (\d+)")]
    private static partial Regex TickRegex();

    private static List<long> Ticks(string text) =>
        TickRegex().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    /// <summary>The source keeps ticking on its own after a failed migration, and its memory checks still pass.</summary>
    private void AssertStillRunning(VmmProcess source)
    {
        long last = Ticks(source.Stdout).Max();
        Assert.True(source.WaitFor((o, _) => Ticks(o).Max() >= last + 12, TimeSpan.FromSeconds(30)),
            "the source stopped ticking after the failed migration");
        Assert.False(source.HasExited);
        Assert.DoesNotContain("MISMATCH", source.Stdout);
        Assert.DoesNotContain("BAD", source.Stdout);
        var ticks = Ticks(source.Stdout);
        Assert.Equal(Enumerable.Range(1, ticks.Count).Select(i => (long)i), ticks);
        Assert.Equal("running", VmmProcess.Control(_socket, "{\"cmd\":\"status\"}").GetProperty("state").GetString());
    }

    [KvmFact]
    public void GuestMovesWithEveryTickOnceAndItsMemoryIntact()
    {
        var source = Source("test=dirty");
        var (dest, port) = Destination("test=dirty");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port).GetProperty("ok").GetBoolean());
        var done = watch.Until(TimeSpan.FromSeconds(120), "migrated", "migration-failed");
        foreach (var e in watch.Events)
            log.WriteLine(e.ToString());
        Assert.NotNull(done);
        Assert.Equal("migrated", done.Value.GetProperty("event").GetString());
        double downtime = done.Value.GetProperty("downtimeMs").GetDouble();
        log.WriteLine($"downtime {downtime:0.0} ms, total {done.Value.GetProperty("totalMs").GetDouble():0} ms");
        Assert.Contains(watch.Events, e => e.GetProperty("event").GetString() == "migration");

        Assert.True(source.WaitForExit(TimeSpan.FromSeconds(20)), "the source VMM did not exit after the move");
        Assert.Equal(0, source.ExitCode);
        Assert.Contains("Migrated", source.Stderr);
        long lastOnSource = Ticks(source.Stdout).Max();
        // The destination continues: two more static-region checks prove the region arrived intact.
        Assert.True(dest.WaitFor((o, _) => Ticks(o).Count > 0 && Ticks(o).Max() >= lastOnSource + 21, TimeSpan.FromSeconds(60)),
            "the destination did not keep ticking");
        Assert.Contains("incoming migration complete", dest.Stderr);
        // Source output, then destination output (a line cut at the switch-over joins up): 1, 2, ..., N.
        var ticks = Ticks(source.Stdout.TrimEnd('\n') + dest.Stdout);
        Assert.Equal(Enumerable.Range(1, ticks.Count).Select(i => (long)i), ticks);
        Assert.Matches(@"check \d+ ok", dest.Stdout);
        Assert.DoesNotContain("MISMATCH", dest.Stdout);
        Assert.DoesNotContain("BAD", dest.Stdout);
        Assert.False(dest.HasExited);
    }

    [KvmFact]
    public void CutLinkMidMigrationLeavesTheSourceRunningAndNoDestination()
    {
        // 1 ms of downtime never fits: the migration keeps going round after round until the link is cut. The 32 MB/s
        // cap makes each round seconds long, so even a guest starved of CPU on a loaded host dirties pages meanwhile
        // (without it, a round could fall into a moment the guest did not run, and the migration completed).
        var source = Source("test=dirty mb=128", "512M");
        var (dest, port) = Destination("test=dirty mb=128", "512M");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, maxDowntimeMs: 1, maxBandwidthMBps: 32).GetProperty("ok").GetBoolean());
        Assert.NotNull(watch.Until(TimeSpan.FromSeconds(60), "migration"));
        _net.CutLink();
        var failed = watch.Until(TimeSpan.FromSeconds(60), "migrated", "migration-failed");
        Assert.NotNull(failed);
        log.WriteLine(failed.Value.ToString());
        Assert.Equal("migration-failed", failed.Value.GetProperty("event").GetString());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(60)), "the destination VMM stayed behind");
        Assert.NotEqual(0, dest.ExitCode);
        AssertStillRunning(source);
    }

    [KvmFact]
    public void KilledDestinationLeavesTheSourceRunning()
    {
        var source = Source("test=dirty mb=128", "512M");
        var (dest, port) = Destination("test=dirty mb=128", "512M");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, maxDowntimeMs: 1, maxBandwidthMBps: 32).GetProperty("ok").GetBoolean());
        Assert.NotNull(watch.Until(TimeSpan.FromSeconds(60), "migration"));
        dest.Kill();
        var failed = watch.Until(TimeSpan.FromSeconds(30), "migrated", "migration-failed");
        Assert.Equal("migration-failed", failed?.GetProperty("event").GetString());
        AssertStillRunning(source);
    }

    [KvmFact]
    public void AbortStopsTheMigrationAndTheDestination()
    {
        var source = Source("test=dirty mb=128", "512M");
        var (dest, port) = Destination("test=dirty mb=128", "512M");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, maxDowntimeMs: 1, maxBandwidthMBps: 32).GetProperty("ok").GetBoolean());
        Assert.NotNull(watch.Until(TimeSpan.FromSeconds(60), "migration"));
        Assert.True(VmmProcess.Control(_socket, "{\"cmd\":\"migrate-abort\"}").GetProperty("ok").GetBoolean());
        var failed = watch.Until(TimeSpan.FromSeconds(30), "migrated", "migration-failed");
        Assert.Equal("migration aborted", failed?.GetProperty("message").GetString());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(30)), "the destination VMM stayed behind");
        Assert.Contains("aborted", dest.Stderr);
        Assert.False(VmmProcess.Control(_socket, "{\"cmd\":\"migrate-abort\"}").GetProperty("ok").GetBoolean());
        AssertStillRunning(source);
    }

    [KvmFact]
    public void GuestThatDoesNotConvergeIsGivenUpClearly()
    {
        // Deterministic, whatever the host's speed: the stream is capped at 32 MB/s, so every pre-copy round of the
        // 32 MiB the guest keeps rewriting lasts a second or more, during which the guest (throttled at most 30%
        // here) rewrites all of it again; 1 ms of downtime at 32 MB/s is 8 pages, which the dirty set never
        // shrinks to. Without the cap a fast host could copy a round within a throttling pause and converge.
        var source = Source("test=dirty mb=32");
        var (dest, port) = Destination("test=dirty mb=32");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, maxDowntimeMs: 1, maxRounds: 4, maxBandwidthMBps: 32).GetProperty("ok").GetBoolean());
        var failed = watch.Until(TimeSpan.FromSeconds(180), "migrated", "migration-failed");
        Assert.Equal("migration-failed", failed?.GetProperty("event").GetString());
        string message = failed!.Value.GetProperty("message").GetString()!;
        log.WriteLine(message);
        Assert.Contains("did not converge: after 4 rounds", message);
        Assert.Contains("raise --max-downtime", message);
        Assert.Matches("vCPUs throttled to [1-9]0%", message);
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(30)), "the destination VMM stayed behind");
        AssertStillRunning(source);
    }

    [KvmFact]
    public void WrongTokenIsRefusedAndTheSourceKeepsRunning()
    {
        var source = Source("test=dirty");
        var (dest, port) = Destination("test=dirty");
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, token: "not-the-token").GetProperty("ok").GetBoolean());
        var failed = watch.Until(TimeSpan.FromSeconds(30), "migrated", "migration-failed");
        Assert.Contains("refused the migration token", failed?.GetProperty("message").GetString());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(30)), "the destination VMM stayed behind");
        Assert.Contains("did not prove the token", dest.Stderr);
        AssertStillRunning(source);
    }
}
