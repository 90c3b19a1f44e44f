using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Boots the guest kit's Linux (built by `kiln guest-kit build`, cached across runs) to its KILN-INIT-READY
/// marker and checks what the guest saw. SLOW: on an emulating (PVM) host each boot takes one to two minutes of
/// emulated ring-0 time, so each test combines several checks into one boot. test.sh runs them with
/// KILN_LINUX_TESTS=1 (CI does).</summary>
[Trait("Category", "SlowLinux")]
public sealed partial class LinuxBootTests(ITestOutputHelper log)
{
    [GeneratedRegex(@"KILN-INIT-READY nproc=(\d+) memtotal_kb=(\d+) date=(\d+)")]
    private static partial Regex Marker();

    private StreamingProcess.Result Boot(int cpus, int memoryMiB, string ready, Func<string, bool>? stopWhen = null, bool noReboot = false)
    {
        var r = StreamingProcess.Run("dotnet",
        [
            Support.Kiln.CliDll, "run", "--kernel", LinuxKit.Kernel, "--initrd", LinuxKit.Initramfs,
            "--memory", $"{memoryMiB}M", "--cpus", cpus.ToString(), "--stats", .. (noReboot ? ["--no-reboot"] : Array.Empty<string>()),
            // loglevel=6 after `quiet`: the "Linux version" banner (KERN_NOTICE) shows, so a second boot is visible.
            "--cmdline", LinuxKit.Cmdline($"kiln.ready={ready} loglevel=6"),
        ], TimeSpan.FromMinutes(25), line => LinuxKit.IsPanic(line) || (stopWhen?.Invoke(line) ?? false));
        log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalSeconds:F1} s (stopped early: {r.StoppedEarly})\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "the guest did not finish in time");
        return r;
    }

    /// <summary>Checks the marker: N CPUs, about the requested memory (the kernel keeps some), the host's date.</summary>
    private static void AssertMarker(string stdout, int cpus, int memoryMiB, long bootStartedUnix)
    {
        var m = Marker().Match(stdout);
        Assert.True(m.Success, "no KILN-INIT-READY marker on the console");
        Assert.Equal(cpus, int.Parse(m.Groups[1].Value));
        long memKb = long.Parse(m.Groups[2].Value);
        Assert.InRange(memKb, (memoryMiB - 40) * 1024L, memoryMiB * 1024L);
        long guestTime = long.Parse(m.Groups[3].Value);
        Assert.InRange(guestTime, bootStartedUnix - 120, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 120);
    }

    /// <summary>One vCPU, 256 MiB: marker (1 CPU, memory, date), then `poweroff -f` through ACPI S5 ends kiln with 0.</summary>
    [KvmFact]
    public void OneCpuReachesInitSeesItsMemoryAndDateAndPowersOff()
    {
        long started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var r = Boot(1, 256, "poweroff", noReboot: true);
        AssertMarker(r.Stdout, 1, 256, started);
        Assert.Equal(0, r.ExitCode);
    }

    /// <summary>One vCPU: `reboot -f` resets the machine and a second kernel banner appears, after which the test
    /// stops kiln (SIGTERM: exit 0).</summary>
    [KvmFact]
    public void RebootStartsASecondBoot() => AssertRebootsOnce(1, 256);

    /// <summary>Two vCPUs, 320 MiB: marker (2 CPUs online in the guest, memory, date), then a reboot. On PVM hosts
    /// this needs the kit command line's glibc tunable (KitFiles.NoAvxInUserSpace): without it processes died at init
    /// in 1 of 3-6 boots (guestkit/README.md); with it 11 of 11 boots were clean.</summary>
    [KvmFact]
    [Trait("Category", "SlowLinux")]
    public void TwoCpusReachInitAndRebootStartsASecondBoot() => AssertRebootsOnce(2, 320);

    private void AssertRebootsOnce(int cpus, int memoryMiB)
    {
        long started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int banners = 0;
        var r = Boot(cpus, memoryMiB, "reboot", line => line.Contains("Linux version", StringComparison.Ordinal) && ++banners == 2);
        AssertMarker(r.Stdout, cpus, memoryMiB, started);
        Assert.True(r.StoppedEarly, "no second boot after the guest's reboot");
        Assert.Equal(2, Regex.Matches(r.Stdout, "Linux version").Count);
        Assert.Equal(0, r.ExitCode);
    }
}
