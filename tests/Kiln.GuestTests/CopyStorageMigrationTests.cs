using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary><c>migrate --copy-storage</c> between two VMMs in two network namespaces whose disks live in different
/// directories (nothing shared): the `test=disk-writer` guest keeps writing its virtio-blk disk (and checks what it
/// reads back against the write numbers in its RAM) while it moves. The destination's image, created by the
/// destination VMM, must end up byte for byte what the guest wrote (checked with the real <c>qemu-img compare</c>,
/// a qcow2 source with a raw backing file flattened on the way); an abort or a cut link must leave the source
/// running and no image on the destination.</summary>
public sealed partial class CopyStorageMigrationTests(ITestOutputHelper log) : IDisposable
{
    private const string Token = "copy-storage-test-token";
    private const ulong DiskSize = 64 << 20;
    private const int Blocks = 4096;
    private const int BlockSize = 4096;

    /// <summary>Content outside the guest's write area (at 40 MiB): the first pass must carry it, from the backing
    /// file in the qcow2 case.</summary>
    private const long StaticOffset = 40 << 20;
    private const int StaticLength = 1 << 20;

    private readonly VethNamespaces _net = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"kcs-{Guid.NewGuid():N}");
    private readonly string _socket = Path.Combine(Path.GetTempPath(), $"kcs-{Guid.NewGuid():N}.sock");
    private readonly string _destSocket = Path.Combine(Path.GetTempPath(), $"kcs-{Guid.NewGuid():N}.sock");
    private readonly List<VmmProcess> _vmms = [];

    private string SourceDir => Path.Combine(_dir, "source-host");
    private string DestDir => Path.Combine(_dir, "destination-host");

    public void Dispose()
    {
        foreach (var v in _vmms)
        {
            log.WriteLine($"--- vmm {v.Pid} stderr\n{v.Stderr}");
            v.Dispose();
        }
        _net.Dispose();
        File.Delete(_socket); // a killed VMM leaves its control socket behind
        File.Delete(_destSocket);
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void Init()
    {
        Directory.CreateDirectory(SourceDir);
        Directory.CreateDirectory(DestDir);
    }

    /// <summary>The source image: raw, or a qcow2 overlay over a raw base; either way with the static pattern.</summary>
    private string SourceDisk(string format)
    {
        Init();
        string raw = Path.Combine(SourceDir, format == "raw" ? "disk.raw" : "base.raw");
        using (var f = new FileStream(raw, FileMode.Create))
        {
            f.SetLength((long)DiskSize);
            f.Position = StaticOffset;
            f.Write(StaticPattern());
        }
        if (format == "raw")
            return raw;
        string overlay = Path.Combine(SourceDir, "disk.qcow2");
        var r = ProcessRunner.Run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", overlay], TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, r.Stderr);
        return overlay;
    }

    private static byte[] StaticPattern()
    {
        var data = new byte[StaticLength];
        for (int i = 0; i < data.Length; i++)
            data[i] = (byte)(i * 7 + i / 4096 + 1);
        return data;
    }

    private VmmProcess Source(string cmdline, string disk)
    {
        var p = new VmmProcess(_net.A, ["run", "--kernel", TestGuest.Path, "--memory", "256M", "--cmdline", cmdline,
            "--disk", disk, "--control-socket", _socket]);
        _vmms.Add(p);
        Assert.True(p.WaitFor((o, _) => o.Contains("tick 3\n"), TimeSpan.FromSeconds(60)), "the source guest did not start ticking");
        return p;
    }

    private (VmmProcess Vmm, int Port) Destination(string cmdline, string disk)
    {
        var p = new VmmProcess(_net.B, ["run", "--kernel", TestGuest.Path, "--memory", "256M", "--cmdline", cmdline,
            "--disk", disk, "--incoming", $"tcp:{_net.AddressB}:0", "--control-socket", _destSocket],
            new Dictionary<string, string> { ["KILN_MIGRATION_TOKEN"] = Token });
        _vmms.Add(p);
        Assert.True(p.WaitFor((_, e) => WaitingRegex().IsMatch(e), TimeSpan.FromSeconds(60)), "the destination did not listen");
        int port = int.Parse(WaitingRegex().Match(p.Stderr).Groups[1].Value, CultureInfo.InvariantCulture);
        return (p, port);
    }

    private JsonElement Migrate(int port, int? maxDowntimeMs = null)
    {
        string extra = maxDowntimeMs is int ms ? $",\"maxDowntimeMs\":{ms},\"maxRounds\":1000" : "";
        return VmmProcess.Control(_socket,
            $"{{\"cmd\":\"migrate\",\"uri\":\"tcp:{_net.AddressB}:{port}\",\"token\":\"{Token}\",\"copyStorage\":true{extra}}}");
    }

    [GeneratedRegex(@"waiting for a migration on tcp:[0-9.]+:(\d+)")]
    private static partial Regex WaitingRegex();

    [GeneratedRegex(@"tick (\d+)")]
    private static partial Regex TickRegex();

    private static List<long> Ticks(string text) =>
        TickRegex().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    /// <summary>The disk the guest leaves after <paramref name="writes"/> writes (same xorshift and pattern as
    /// guest/tests/disk_writer.c), over the static pattern.</summary>
    private static byte[] ExpectedDisk(long writes, ulong seed)
    {
        var disk = new byte[DiskSize];
        StaticPattern().CopyTo(disk, StaticOffset);
        ulong x = 0x9e3779b97f4a7c15UL ^ seed;
        var last = new long[Blocks];
        for (long i = 1; i <= writes; i++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            last[x % Blocks] = i;
        }
        for (int b = 0; b < Blocks; b++)
        {
            if (last[b] == 0)
                continue;
            ulong i = (ulong)last[b];
            for (int k = 0; k < BlockSize / 8; k++)
                BinaryPrimitives.WriteUInt64LittleEndian(disk.AsSpan(b * BlockSize + k * 8),
                    (i * 0x9e3779b97f4a7c15UL) ^ ((ulong)b << 16) ^ (ulong)k);
        }
        return disk;
    }

    private static void QemuImg(params string[] args)
    {
        var r = ProcessRunner.Run("qemu-img", args, TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, $"qemu-img {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stdout}{r.Stderr}");
    }

    /// <summary>The guest writes its disk throughout the move; the destination creates its image (raw: format from
    /// the source; qcow2: as configured), finishes the writes, verifies every block against its RAM, and its image
    /// equals the guest's writes over the source's other content (qcow2: the backing file's, flattened).</summary>
    [KvmTheory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public void DiskWrittenDuringTheMoveArrivesWhole(string format)
    {
        const long writes = 200_000;
        string src = SourceDisk(format);
        string dst = Path.Combine(DestDir, format == "raw" ? "disk.raw" : "disk.qcow2");
        string cmdline = $"test=disk-writer writes={writes} seed=7";
        var source = Source(cmdline, src);
        var (dest, port) = Destination(cmdline, format == "raw" ? dst : dst + ",format=qcow2");
        Assert.False(File.Exists(dst));
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port).GetProperty("ok").GetBoolean());
        var done = watch.Until(TimeSpan.FromSeconds(120), "migrated", "migration-failed");
        foreach (var e in watch.Events)
            log.WriteLine(e.ToString());
        Assert.NotNull(done);
        Assert.True(done.Value.GetProperty("event").GetString() == "migrated", done.Value.ToString());
        log.WriteLine($"downtime {done.Value.GetProperty("downtimeMs").GetDouble():0.0} ms, total {done.Value.GetProperty("totalMs").GetDouble():0} ms, " +
                      $"disk {done.Value.GetProperty("diskBytesSent").GetInt64() / 1e6:0.0} MB");
        Assert.Contains(watch.Events, e => e.GetProperty("event").GetString() == "migration" && e.TryGetProperty("diskBytesSent", out _));
        Assert.True(source.WaitForExit(TimeSpan.FromSeconds(20)), "the source VMM did not exit after the move");
        // The move happened while the guest was still writing.
        Assert.DoesNotContain("writes done", source.Stdout);
        Assert.True(dest.WaitFor((o, _) => o.Contains("writes done") || o.Contains("MISMATCH"), TimeSpan.FromSeconds(120)),
            "the destination did not finish the writes");
        Assert.DoesNotContain("MISMATCH", source.Stdout + dest.Stdout);
        Assert.Contains("disk verify ok", dest.Stdout);
        Assert.Contains($"created {dst}", dest.Stderr);
        var ticks = Ticks(source.Stdout.TrimEnd('\n') + dest.Stdout);
        Assert.Equal(Enumerable.Range(1, ticks.Count).Select(i => (long)i), ticks);

        // Stop the destination cleanly (qcow2 metadata written), then compare with the real qemu-img.
        Assert.True(VmmProcess.Control(_destSocket, "{\"cmd\":\"stop\"}").GetProperty("ok").GetBoolean());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(20)), "the destination VMM did not stop");
        string expected = Path.Combine(_dir, "expected.raw");
        File.WriteAllBytes(expected, ExpectedDisk(writes, 7));
        if (format == "qcow2")
        {
            QemuImg("check", "-f", "qcow2", dst);
            var info = ProcessRunner.Run("qemu-img", ["info", dst], TimeSpan.FromSeconds(30));
            Assert.DoesNotContain("backing file", info.Stdout); // flattened
        }
        QemuImg("compare", "-f", format, "-F", "raw", dst, expected);
    }

    /// <summary>A guest that wrote its disk before the move (and is idle now): the destination's image equals the
    /// source's final image, the qcow2 overlay and its backing file read together (qemu-img compare).</summary>
    [KvmFact]
    public void IdleDiskEqualsTheSourceImage()
    {
        string src = SourceDisk("qcow2");
        string dst = Path.Combine(DestDir, "disk.qcow2");
        string cmdline = "test=disk-writer writes=20000 seed=3";
        var source = Source(cmdline, src);
        Assert.True(source.WaitFor((o, _) => o.Contains("writes done"), TimeSpan.FromSeconds(60)), "the guest did not finish its writes");
        var (dest, port) = Destination(cmdline, dst);
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port).GetProperty("ok").GetBoolean());
        var done = watch.Until(TimeSpan.FromSeconds(120), "migrated", "migration-failed");
        Assert.Equal("migrated", done?.GetProperty("event").GetString());
        Assert.True(source.WaitForExit(TimeSpan.FromSeconds(20)), "the source VMM did not exit after the move");
        long lastOnSource = Ticks(source.Stdout).Max();
        Assert.True(dest.WaitFor((o, _) => Ticks(o).Count > 0 && Ticks(o).Max() >= lastOnSource + 5, TimeSpan.FromSeconds(30)),
            "the destination did not keep ticking");
        Assert.True(VmmProcess.Control(_destSocket, "{\"cmd\":\"stop\"}").GetProperty("ok").GetBoolean());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(20)), "the destination VMM did not stop");
        QemuImg("compare", src, dst);
        string expected = Path.Combine(_dir, "expected.raw");
        File.WriteAllBytes(expected, ExpectedDisk(20000, 3));
        QemuImg("compare", "-F", "raw", dst, expected);
    }

    /// <summary>An abort or a cut link mid-migration: the source keeps running (and writing, its checks passing),
    /// the destination VMM exits and the image it created is gone.</summary>
    [KvmTheory]
    [InlineData("abort")]
    [InlineData("cut")]
    public void FailedMigrationLeavesNoDestinationImage(string how)
    {
        string src = SourceDisk("raw");
        string dst = Path.Combine(DestDir, "disk.raw");
        // 16 MiB of disk rewritten all the time never fits 1 ms: the migration keeps going round after round (for
        // about a second, until auto-converge gives up) while it is ended. Auto-converge pauses the devices with the
        // vCPUs for up to 90% of the time, which on a loaded host can hold a request past the guest's 2 s default.
        const string cmdline = "test=disk-writer timeout_ms=30000";
        var source = Source(cmdline, src);
        var (dest, port) = Destination(cmdline, dst);
        using var watch = new VmmProcess.Watch(_socket);
        Assert.True(Migrate(port, maxDowntimeMs: 1).GetProperty("ok").GetBoolean());
        Assert.NotNull(watch.Until(TimeSpan.FromSeconds(60), "migration"));
        Assert.True(File.Exists(dst), "the destination did not create its image");
        if (how == "abort")
            Assert.True(VmmProcess.Control(_socket, "{\"cmd\":\"migrate-abort\"}").GetProperty("ok").GetBoolean());
        else
            _net.CutLink();
        var failed = watch.Until(TimeSpan.FromSeconds(60), "migrated", "migration-failed");
        Assert.Equal("migration-failed", failed?.GetProperty("event").GetString());
        log.WriteLine(failed!.Value.ToString());
        // A cut link ends the destination after its 10 s read timeout; a saturated host has stretched that a lot.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(120)), "the destination VMM stayed behind");
        log.WriteLine($"the destination exited {waited.Elapsed.TotalSeconds:0.0} s after the source gave up");
        Assert.NotEqual(0, dest.ExitCode);
        Assert.False(File.Exists(dst), "the destination's image stayed behind");
        Assert.Contains($"removed {dst}", dest.Stderr);

        long last = Ticks(source.Stdout).Max();
        Assert.True(source.WaitFor((o, _) => Ticks(o).Max() >= last + 12, TimeSpan.FromSeconds(30)),
            "the source stopped ticking after the failed migration");
        Assert.DoesNotContain("MISMATCH", source.Stdout);
        Assert.Equal("running", VmmProcess.Control(_socket, "{\"cmd\":\"status\"}").GetProperty("state").GetString());
        // Tracking is off again, and a second migration may start later: the source is as before.
        Assert.False(VmmProcess.Control(_socket, "{\"cmd\":\"migrate-abort\"}").GetProperty("ok").GetBoolean());
    }
}
