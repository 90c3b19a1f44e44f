using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>A guest that attacks its VMM through every port and register window never ends it: faulting accesses
/// are dropped, broken devices need a reset, refused notify addresses and interrupts are logged, and whatever the
/// guest wrote to its disk before it turned hostile reaches the image.</summary>
public sealed class HostileGuestTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-hostile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name) => Path.Combine(_dir, name);

    private ProcessRunner.Result Boot(string cmdline, params string[] extra) =>
        Checked(Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline", cmdline, .. extra],
            HangGuard, stdin: ""));

    // Generous: the ring-0 port sweep takes 17-30 s on a PVM host, the rest a few seconds.
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(10);

    private static ProcessRunner.Result Ip(params string[] args) => ProcessRunner.Run("ip", args, TimeSpan.FromSeconds(10));

    /// <summary>Boots with a virtio-net NIC on a tap inside a network namespace of the test's own (nothing leaves it).</summary>
    private ProcessRunner.Result BootWithNic(string cmdline, params string[] extra)
    {
        string ns = "kfl" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + cmdline.Length;
        Ip("netns", "del", ns);
        Assert.Equal(0, Ip("netns", "add", ns).ExitCode);
        try
        {
            Assert.Equal(0, Ip("-n", ns, "tuntap", "add", "dev", "kf0", "mode", "tap").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "link", "set", "kf0", "up").ExitCode);
            return Checked(ProcessRunner.Run("ip", ["netns", "exec", ns, "dotnet", Support.Kiln.CliDll, "run", "--kernel",
                TestGuest.Path, "--memory", "64M", "--cmdline", cmdline, "--net", "tap=kf0", .. extra], HangGuard, stdin: ""));
        }
        finally
        {
            Ip("netns", "del", ns);
        }
    }

    private ProcessRunner.Result Checked(ProcessRunner.Result r)
    {
        log.WriteLine($"exit {r.ExitCode} after {r.Elapsed.TotalSeconds:0.0} s\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "kiln did not finish in time");
        // No unhandled exception (status 134 with a .NET stack trace): the guest ended the run, not a fault.
        Assert.DoesNotContain("Unhandled exception", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        return r;
    }

    private string Disk(int mib)
    {
        string path = File("disk.raw");
        using (var f = System.IO.File.Create(path))
            f.SetLength((long)mib << 20);
        return path;
    }

    [KvmFact]
    public void RingZeroPortSweepLeavesTheVmmRunning()
    {
        // Every port at widths 1, 2 and 4, read then written with garbage, from the guest's ring 0, with virtio-pci
        // functions behind 0xCF8/0xCFC. The only writes left out are the ones that stop or reset the machine
        // (guest/tests/port_sweep.c lists them). Port 0x607 (ACPI PM offset 7) used to abort the VMM here.
        var r = Boot("test=port-sweep", "--disk", Disk(1), "--rng");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("196608 reads", r.Stdout);
        Assert.Contains("196562 writes, 46 skipped", r.Stdout);
        Assert.Contains("port sweep: vmm alive", r.Stdout);
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void MmioSweepOfBothTransportsLeavesDevicesRecoverable(string transport)
    {
        // blk, net, rng and console: every device kind, each with its own worker.
        var r = BootWithNic($"test=mmio-sweep transport={transport}", "--transport", transport, "--disk", Disk(1), "--rng",
            "--console", "virtio");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("mmio sweep: vmm alive, devices recovered", r.Stdout);
        Assert.DoesNotContain("FAILED", r.Stdout);
        foreach (string device in new[] { "blk", "net", "rng", "console" })
        {
            Assert.Contains($"virtio-{device}: descriptor table at 0x7fff00000000 is outside guest RAM; device needs reset", r.Stderr);
            Assert.Matches($"{device} recovered after a reset: ok", r.Stdout);
        }
        if (transport == "pci")
        {
            // The blk function's BAR on top of the rng's: KVM refused its notify ioeventfd (EEXIST), which used to
            // stop the VM; now its notifications reach it through the VMM (the guest used it there).
            Assert.Contains("virtio-blk: no ioeventfd at notify address", r.Stderr);
            Assert.Contains("blk used at net's address: ok", r.Stdout);
        }
    }

    [KvmFact]
    public void DeferredQcow2MetadataIsWrittenAfterTheGuestFaultsDevices()
    {
        // The guest writes 64 sectors (new clusters: their L2 entries wait in the VMM's deferred metadata, no flush),
        // then writes reserved ACPI PM offset 7 (the write that aborted the VMM before its metadata was written) and
        // breaks the disk's own queue (NEEDS_RESET), resets it, reads its data back and exits.
        string image = File("disk.qcow2");
        var create = Support.Kiln.Run(["img", "create", "-f", "qcow2", image, "16M"]);
        Assert.True(create.ExitCode == 0, create.Stderr);
        var r = Boot("test=virtio-blk write=1 sector=100 count=64 hostile=1", "--disk", image);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("request with a zero-length header: needs reset", r.Stdout);
        Assert.Contains("after the faults: read-back ok", r.Stdout);

        var check = ProcessRunner.Run("qemu-img", ["check", image], TimeSpan.FromMinutes(1));
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        var convert = ProcessRunner.Run("qemu-img", ["convert", "-O", "raw", image, File("out.raw")], TimeSpan.FromMinutes(1));
        Assert.True(convert.ExitCode == 0, convert.Stderr);
        var data = System.IO.File.ReadAllBytes(File("out.raw"));
        var expected = new byte[16 << 20];
        for (int s = 100; s < 164; s++)
            for (int i = 0; i < 512; i++)
                expected[s * 512 + i] = (byte)(s * 31 + i * 7 + 0x5a); // guest/tests/virtio_blk.c's pattern
        Assert.Equal(expected, data);
    }
}
