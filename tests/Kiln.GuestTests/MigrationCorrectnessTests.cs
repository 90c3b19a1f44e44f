using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Live-migration corner cases beyond the dirty-memory workload of <see cref="MigrationGuestTests"/>: RAM
/// written by a device (which KVM's dirty log never sees) must arrive, and a link lost between Go and Resumed must
/// never leave the guest running twice.</summary>
public sealed class MigrationCorrectnessTests(ITestOutputHelper log) : IDisposable
{
    private readonly MigrationPair _pair = new(log);
    private readonly string _disk = Path.Combine(Path.GetTempPath(), $"kmig-disk-{Guid.NewGuid():N}.raw");

    public void Dispose()
    {
        _pair.Dispose();
        File.Delete(_disk);
    }

    private string[] DevDirtyGuest()
    {
        if (!File.Exists(_disk))
        {
            using var f = File.Create(_disk);
            f.SetLength(8 << 20);
        }
        return ["--kernel", TestGuest.Path, "--memory", "256M", "--disk", _disk + ",format=raw", "--cmdline", "test=devdirty"];
    }

    /// <summary>The `test=devdirty` guest has virtio-blk read disk chunks into a 32 MiB buffer at ~800 MB/s the whole
    /// time, and checks each slot before it is read into again. Only the device writes those pages, so without the
    /// VMM's own write log the destination gets the slots as the first pre-copy round saw them and its check fails.</summary>
    [KvmFact]
    public void PagesWrittenByAVirtioDeviceDuringPreCopyArriveIntact()
    {
        var source = _pair.StartSource(DevDirtyGuest());
        Assert.True(source.WaitFor((o, _) => o.Contains("devcheck 20 ok"), TimeSpan.FromSeconds(60)),
            "the source guest did not start its device reads");
        var (dest, port) = _pair.StartDestination(DevDirtyGuest());
        using var watch = new VmmProcess.Watch(_pair.SourceSocket);
        Assert.True(_pair.Migrate(port).GetProperty("ok").GetBoolean());
        var done = watch.Until(TimeSpan.FromSeconds(120), "migrated", "migration-failed");
        foreach (var e in watch.Events)
            log.WriteLine(e.ToString());
        Assert.Equal("migrated", done?.GetProperty("event").GetString());
        Assert.True(source.WaitForExit(TimeSpan.FromSeconds(20)), "the source VMM did not exit after the move");
        long lastOnSource = MigrationPair.Ticks(source.Stdout).Max();
        // Two checkpoints on the destination: every one of the 512 slots has been checked there many times over.
        bool kept = dest.WaitFor((o, _) => o.Contains("MISMATCH") || MigrationPair.Ticks(o).Any(t => t >= lastOnSource + 20),
            TimeSpan.FromSeconds(60));
        log.WriteLine($"--- destination console\n{dest.Stdout}");
        Assert.DoesNotContain("MISMATCH", dest.Stdout);
        Assert.True(kept, "the destination did not keep going");
        Assert.Matches(@"devcheck \d+ ok", dest.Stdout);
        var ticks = MigrationPair.Ticks(source.Stdout.TrimEnd('\n') + dest.Stdout);
        Assert.Equal(Enumerable.Range(1, ticks.Count).Select(i => (long)i), ticks);
        Assert.False(dest.HasExited);
    }

    /// <summary>The destination (by a test hook) closes the link right after Go, so Resumed never comes. The source
    /// must not resume its copy: it stays paused with the outcome unknown, while the destination runs the guest on.</summary>
    [KvmFact]
    public void LinkLostAfterGoLeavesTheSourcePausedAndTheDestinationRunning()
    {
        string[] guest = ["--kernel", TestGuest.Path, "--memory", "256M", "--cmdline", "test=dirty mb=16"];
        var source = _pair.StartSource(guest);
        Assert.True(source.WaitFor((o, _) => o.Contains("tick 3\n"), TimeSpan.FromSeconds(60)), "the source guest did not start ticking");
        var (dest, port) = _pair.StartDestination(guest,
            new Dictionary<string, string> { ["KILN_TEST_MIGRATION_DROP_LINK_AFTER_GO"] = "1" });
        using var watch = new VmmProcess.Watch(_pair.SourceSocket);
        Assert.True(_pair.Migrate(port).GetProperty("ok").GetBoolean());
        var failed = watch.Until(TimeSpan.FromSeconds(120), "migrated", "migration-failed");
        foreach (var e in watch.Events)
            log.WriteLine(e.ToString());
        Assert.Equal("migration-failed", failed?.GetProperty("event").GetString());
        string message = failed!.Value.GetProperty("message").GetString()!;
        Assert.StartsWith("migration outcome unknown: the destination may be running the guest", message);
        Assert.Contains("`kiln resume` it only if the destination is not running the guest", message);

        // The source is paused and says so; its guest does not tick any more.
        Assert.Equal("paused", VmmProcess.Control(_pair.SourceSocket, "{\"cmd\":\"status\"}").GetProperty("state").GetString());
        long lastOnSource = MigrationPair.Ticks(source.Stdout).Max();
        Thread.Sleep(1500);
        Assert.Equal(lastOnSource, MigrationPair.Ticks(source.Stdout).Max());
        Assert.False(source.HasExited);

        // The destination got Go and runs the guest on, exactly once per tick.
        Assert.True(dest.WaitFor((o, _) => MigrationPair.Ticks(o).Any(t => t >= lastOnSource + 20), TimeSpan.FromSeconds(60)),
            "the destination did not run the guest after Go");
        Assert.Contains("the source did not hear so", dest.Stderr);
        var ticks = MigrationPair.Ticks(source.Stdout.TrimEnd('\n') + dest.Stdout);
        Assert.Equal(Enumerable.Range(1, ticks.Count).Select(i => (long)i), ticks);
        Assert.DoesNotContain("MISMATCH", dest.Stdout);
        Assert.DoesNotContain("BAD", dest.Stdout);
        Assert.False(dest.HasExited);

        // Whoever knows the destination is not running the guest may resume the source (here both then run).
        var resumed = VmmProcess.Control(_pair.SourceSocket, "{\"cmd\":\"resume\"}");
        Assert.True(resumed.GetProperty("ok").GetBoolean(), resumed.ToString());
        Assert.True(source.WaitFor((o, _) => MigrationPair.Ticks(o).Max() > lastOnSource, TimeSpan.FromSeconds(30)),
            "the source did not run again after resume");
    }
}
