using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Boots the guest kit's Linux (kernel built by `kiln guest-kit build`, cached across runs) to its
/// KILN-INIT-READY marker and checks what the guest saw. SLOW: on an emulating (PVM) host each boot takes minutes
/// of emulated ring-0 time, and the first run also compiles the kernel (several CPU-minutes). test.sh runs them only
/// with KILN_LINUX_TESTS=1.</summary>
[Trait("Category", "SlowLinux")]
public sealed partial class LinuxBootTests(ITestOutputHelper log)
{
    private static readonly Lazy<string> KitDir = new(BuildKit);

    private static string BuildKit()
    {
        var r = Support.Kiln.Run(["guest-kit", "build"], TimeSpan.FromMinutes(60));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"kiln guest-kit build failed:\n{r.Stdout}\n{r.Stderr}");
        var m = Regex.Match(r.Stdout, @"kernel\s+(\S+)/vmlinux");
        if (!m.Success)
            throw new InvalidOperationException($"kiln guest-kit build printed no kernel path:\n{r.Stdout}");
        return m.Groups[1].Value;
    }

    [GeneratedRegex(@"KILN-INIT-READY nproc=(\d+) memtotal_kb=(\d+) date=(\d+)")]
    private static partial Regex Marker();

    private void BootToMarker(int cpus)
    {
        string dir = KitDir.Value;
        long before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var r = Support.Kiln.Run(
        [
            "run", "--kernel", Path.Combine(dir, "vmlinux"), "--initrd", Path.Combine(dir, "initramfs.cpio"),
            "--memory", "256M", "--cpus", cpus.ToString(), "--no-reboot",
            "--cmdline", global::Kiln.GuestKit.GuestKitOptions.RecommendedCmdline + " kiln.ready=reboot",
        ], TimeSpan.FromMinutes(15));
        log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalSeconds:F1} s\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "the guest did not reach the marker and reboot in time");
        var m = Marker().Match(r.Stdout);
        Assert.True(m.Success, "no KILN-INIT-READY marker on the console");
        Assert.Equal(cpus, int.Parse(m.Groups[1].Value));
        long memKb = long.Parse(m.Groups[2].Value);
        Assert.InRange(memKb, 200 * 1024, 256 * 1024);
        long guestTime = long.Parse(m.Groups[3].Value);
        Assert.InRange(guestTime, before - 180, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 180);
        Assert.Equal(0, r.ExitCode);
    }

    [KvmFact]
    public void KitLinuxBootsToMarkerWithOneCpu() => BootToMarker(1);

    /// <summary>KNOWN FAILURE on PVM hosts (2026-11): both CPUs come up, but /init's busybox segfaults on its first
    /// TLS access (%fs-relative load reads 0) after migrating to CPU 1, and the kernel panics.</summary>
    [KvmFact]
    public void KitLinuxBootsToMarkerWithTwoCpus() => BootToMarker(2);
}
