using System.Diagnostics;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>One Linux domain through the daemon, as a virsh user would run it: libvirt domain XML with a direct
/// kernel boot of the guest kit (kernel and initramfs from the kit cache, 1 vCPU), start, the busybox shell on the
/// console, and a shutdown. SLOW: the boot takes minutes of emulated ring-0 time on PVM hosts.</summary>
[Trait("Category", "SlowLinux")]
public sealed class DaemonLinuxTests(ITestOutputHelper log) : IDisposable
{
    private const string KitDir = "/var/cache/kiln/guest-kit/latest";
    private readonly DaemonHarness _d = new(log);

    public void Dispose() => _d.Dispose();

    [KvmFact]
    public void LinuxDomainFromVirshXmlBootsToItsShellAndShutsDown()
    {
        string kernel = Path.Combine(KitDir, "vmlinux"), initrd = Path.Combine(KitDir, "initramfs.cpio");
        Assert.True(File.Exists(kernel) && File.Exists(initrd), $"no guest kit in {KitDir}: run 'kiln guest-kit build'");
        string cmdline = global::Kiln.GuestKit.GuestKitOptions.RecommendedCmdline;
        // virsh-style XML as a libvirt user writes it (the attributes Kiln does not need are accepted and ignored).
        string xml = $"""
            <domain type='kvm'>
              <name>linux1</name>
              <uuid>3e0b9a54-1c7d-4f0e-9a61-5d2c8b7e4f10</uuid>
              <memory unit='MiB'>256</memory>
              <currentMemory unit='MiB'>256</currentMemory>
              <vcpu placement='static'>1</vcpu>
              <os>
                <type arch='x86_64' machine='pc'>hvm</type>
                <kernel>{kernel}</kernel>
                <initrd>{initrd}</initrd>
                <cmdline>{cmdline}</cmdline>
              </os>
              <features><acpi/></features>
              <on_poweroff>destroy</on_poweroff>
              <on_reboot>destroy</on_reboot>
              <on_crash>destroy</on_crash>
              <devices>
                <serial type='pty'><target port='0'/></serial>
                <console type='pty'><target type='serial' port='0'/></console>
              </devices>
            </domain>
            """;
        _d.Ok("define", _d.WriteFile("linux1.xml", xml));
        var sw = Stopwatch.StartNew();
        _d.Ok("start", "linux1");
        _d.WaitForLog("linux1", "KILN-INIT-READY", TimeSpan.FromMinutes(12));
        log.WriteLine($"KILN-INIT-READY {sw.Elapsed.TotalSeconds:F0} s after kiln start");
        Assert.Matches(@"linux1\s+running", _d.Ok("list"));
        // The shell evaluates what we type (6*7 is computed by the guest); then `kiln shutdown` presses the ACPI power
        // button, the kernel's button driver hands it to busybox acpid, whose helper powers the guest off (ACPI S5).
        var console = Task.Run(() => _d.Cli(["console", "linux1", "--history"], stdin: "echo kiln-$((6*7))\n",
            timeout: TimeSpan.FromMinutes(5)));
        _d.WaitForLog("linux1", "kiln-42", TimeSpan.FromMinutes(3));
        var shutdown = _d.Cli(["shutdown", "linux1", "--timeout", "240"], timeout: TimeSpan.FromMinutes(5));
        log.WriteLine($"shutdown ({sw.Elapsed.TotalSeconds:F0} s): exit {shutdown.ExitCode}: {shutdown.Stdout}{shutdown.Stderr}");
        Assert.Equal(0, shutdown.ExitCode);
        var ended = console.GetAwaiter().GetResult();
        log.WriteLine($"console ({sw.Elapsed.TotalSeconds:F0} s):\n{ended.Stdout}");
        Assert.False(ended.TimedOut, "the console did not end with the guest");
        Assert.Contains("KILN-INIT-READY nproc=1", ended.Stdout);
        Assert.Contains("kiln-42", ended.Stdout);
        _d.WaitForState("linux1", "shut off");
        Assert.Contains("ACPI S5", _d.Ok("domstate", "linux1"));
        var info = _d.Ok("dominfo", "linux1");
        Assert.Contains("3e0b9a54-1c7d-4f0e-9a61-5d2c8b7e4f10", info);
    }
}
