using System.Globalization;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Debian's stock kernel (`kiln guest-kit build --stock`: the installed linux-image-amd64 unpacked to a
/// vmlinux, with an initramfs holding its virtio modules) boots on Kiln: it reaches the kit's init marker, loads every
/// module, finds the virtio-blk disk and the virtio-net NIC, and powers off. VERY SLOW on an emulating (PVM) host: the
/// stock kernel is not built for it (about 5-10 minutes to the marker on a quiet 2-core host, more under load), so it
/// runs only with KILN_LINUX_STOCK_TESTS=1 (Category=SlowLinuxStock).</summary>
[Trait("Category", "SlowLinuxStock")]
public sealed partial class LinuxStockKernelTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-linux-stock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [GeneratedRegex(@"kernel\s+(\S+)/vmlinux")]
    private static partial Regex KernelLine();

    [GeneratedRegex(@"KILN-STOCK-DEVICES block=(\S*) net=(\S*)")]
    private static partial Regex DevicesLine();

    private static ProcessRunner.Result Ip(params string[] args) => ProcessRunner.Run("ip", args, TimeSpan.FromSeconds(10));

    [StockKernelFact]
    public void StockKernelLoadsItsVirtioModulesSeesDiskAndNicAndPowersOff()
    {
        var build = Support.Kiln.Run(["guest-kit", "build", "--stock"], TimeSpan.FromMinutes(10));
        Assert.True(build.ExitCode == 0, $"kiln guest-kit build --stock failed:\n{build.Stdout}\n{build.Stderr}");
        var kit = KernelLine().Match(build.Stdout);
        Assert.True(kit.Success, $"no kernel path in:\n{build.Stdout}");
        string dir = kit.Groups[1].Value;

        string disk = Path.Combine(_dir, "disk.raw");
        using (var f = File.Create(disk))
            f.SetLength(64L << 20);

        // The NIC's tap lives in a network namespace of its own, so the host's network is left alone.
        string ns = "kst" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        Assert.Equal(0, Ip("netns", "add", ns).ExitCode);
        StreamingProcess.Result r;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TimeSpan? markerAt = null;
        try
        {
            Assert.Equal(0, Ip("-n", ns, "tuntap", "add", "dev", "ks0", "mode", "tap").ExitCode);
            r = StreamingProcess.Run("ip",
            [
                "netns", "exec", ns, "dotnet", Support.Kiln.CliDll, "run", "--kernel", Path.Combine(dir, "vmlinux"),
                "--initrd", Path.Combine(dir, "initramfs.cpio"), "--memory", "256M", "--disk", disk + ",format=raw",
                "--net", "tap=ks0", "--rng", "--stats", "--no-reboot",
                "--cmdline", global::Kiln.GuestKit.GuestKitOptions.StockRecommendedCmdline + " kiln.ready=poweroff",
            ], TimeSpan.FromMinutes(45), line =>
            {
                if (markerAt is null && line.Contains("KILN-INIT-READY", StringComparison.Ordinal))
                    markerAt = clock.Elapsed;
                return LinuxKit.IsPanic(line);
            });
        }
        finally
        {
            Ip("netns", "del", ns);
        }
        log.WriteLine($"marker after {markerAt?.TotalSeconds:F1} s; exit {r.ExitCode} in {r.Elapsed.TotalSeconds:F1} s " +
            $"(load average {File.ReadAllText("/proc/loadavg").Trim()})\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");

        Assert.False(r.TimedOut, "the stock kernel did not power off in time");
        Assert.DoesNotContain("Kernel panic", r.Stdout);
        Assert.DoesNotContain("kiln: insmod", r.Stdout); // /init prints "kiln: insmod MODULE failed" for each failure
        Assert.Contains("KILN-INIT-READY nproc=1", r.Stdout);
        var devices = DevicesLine().Match(r.Stdout);
        Assert.True(devices.Success, "no KILN-STOCK-DEVICES line on the console");
        Assert.Contains("vda", devices.Groups[1].Value.Split(','));
        Assert.Contains("eth0", devices.Groups[2].Value.Split(','));
        Assert.Equal(0, r.ExitCode);
    }
}
