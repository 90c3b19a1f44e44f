using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>virtio devices end to end: the test guest's ring-3 polling driver against `kiln run --disk/--rng/
/// --console virtio`, over both transports, including drivers that write garbage.</summary>
public sealed class VirtioGuestTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _disk = Path.Combine(Path.GetTempPath(), $"kiln-vt-{Guid.NewGuid():N}.img");

    private ProcessRunner.Result Boot(string cmdline, string? stdin, params string[] extra)
    {
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline", cmdline, .. extra],
            TimeSpan.FromSeconds(60), stdin);
        log.WriteLine($"exit {r.ExitCode}\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "kiln did not finish in time");
        return r;
    }

    private void MakeDisk(int mib)
    {
        var data = new byte[mib << 20];
        new Random(7).NextBytes(data);
        File.WriteAllBytes(_disk, data);
    }

    public void Dispose() => File.Delete(_disk);

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void BlockReadWriteFlushAndSerial(string transport)
    {
        MakeDisk(16);
        var before = File.ReadAllBytes(_disk);
        var r = Boot($"test=virtio-blk transport={transport} write=1 sector=8 count=4 id=1 flush=1", null,
            "--transport", transport, "--disk", $"{_disk},serial=KILN123");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("id 'KILN123'", r.Stdout);
        Assert.Contains("read-back ok", r.Stdout);
        Assert.Contains("flush status 0", r.Stdout);
        var after = File.ReadAllBytes(_disk);
        Assert.NotEqual(before.AsSpan(8 * 512, 4 * 512).ToArray(), after.AsSpan(8 * 512, 4 * 512).ToArray());
        Assert.Equal(before.AsSpan(0, 8 * 512).ToArray(), after.AsSpan(0, 8 * 512).ToArray()); // nothing else touched
        Assert.Equal(before.AsSpan(12 * 512).ToArray(), after.AsSpan(12 * 512).ToArray());
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void ReadOnlyDiskRefusesWrites(string transport)
    {
        MakeDisk(1);
        var before = File.ReadAllBytes(_disk);
        var r = Boot($"test=virtio-blk transport={transport} ro=1 sector=8 count=1", null, "--transport", transport, "--disk", $"{_disk},ro");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("IOERR, as expected", r.Stdout);
        Assert.Equal(before, File.ReadAllBytes(_disk));
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void RngDeliversRandomBytes(string transport)
    {
        var r = Boot($"test=virtio-rng transport={transport} bytes=64", null, "--transport", transport, "--rng");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("bytes differ: ok", r.Stdout);
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void VirtioConsoleCarriesTheTerminal(string transport)
    {
        var r = Boot($"test=virtio-console transport={transport} wait=20", "hello q", "--transport", transport, "--console", "virtio");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("rx 7 bytes: 68 65 6c 6c 6f 20 71", r.Stdout);
        Assert.Contains("got 'q'", r.Stdout);
    }

    public static TheoryData<string, string> HostileCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var transport in new[] { "pci", "mmio" })
            foreach (var c in new[] { "oob-addr", "loop", "long-chain", "bad-index", "zero-len", "huge-len", "wrong-dir", "avail-jump", "indirect-oob" })
                data.Add(transport, c);
        return data;
    }

    [KvmTheory]
    [MemberData(nameof(HostileCases))]
    public void HostileDriverGetsNeedsResetAndTheVmmSurvives(string transport, string hostileCase)
    {
        MakeDisk(1);
        var before = File.ReadAllBytes(_disk);
        var r = Boot($"test=virtio-hostile transport={transport} case={hostileCase} indirect=1", null, "--transport", transport, "--disk", _disk);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains($"hostile {hostileCase}: needs_reset", r.Stdout);
        Assert.Contains("device recovered", r.Stdout);
        var warnings = r.Stderr.Split('\n').Where(l => l.Contains("needs reset")).ToList();
        Assert.Single(warnings); // one line per misbehaviour
        Assert.Equal(before, File.ReadAllBytes(_disk));
    }

    [KvmFact]
    public void MissingDiskIsOneClearLine()
    {
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--disk", "/nonexistent/disk.img"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains("/nonexistent/disk.img", r.Stderr);
    }
}
