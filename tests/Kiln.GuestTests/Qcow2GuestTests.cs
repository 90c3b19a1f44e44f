using System.Diagnostics;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>virtio-blk on a qcow2 overlay end to end: `kiln img create -b`, the test guest writing through
/// `kiln run --disk overlay.qcow2`, then qemu-img as the judge; and a kill -9 of the VMM mid-write.</summary>
public sealed class Qcow2GuestTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-qcow2-guest-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name) => Path.Combine(_dir, name);

    /// <summary>The guest's write pattern (guest/tests/virtio_blk.c).</summary>
    private static byte[] Pattern(int sector, int count)
    {
        var p = new byte[count * 512];
        for (int s = 0; s < count; s++)
            for (int i = 0; i < 512; i++)
                p[s * 512 + i] = (byte)((sector + s) * 31 + i * 7 + 0x5a);
        return p;
    }

    private static ProcessRunner.Result Tool(string tool, params string[] args) =>
        ProcessRunner.Run(tool, args, TimeSpan.FromMinutes(2));

    private byte[] MakeOverlay(int clusterSize)
    {
        var baseData = new byte[16 << 20];
        new Random(21).NextBytes(baseData);
        System.IO.File.WriteAllBytes(File("base.raw"), baseData);
        var r = Support.Kiln.Run(["img", "create", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", "-b", "base.raw", "-F", "raw", File("overlay.qcow2")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return baseData;
    }

    [KvmFact]
    public void GuestWritesLandInTheOverlayAndTheBaseIsUntouched()
    {
        var baseData = MakeOverlay(65536);
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline",
            "test=virtio-blk transport=pci write=1 sector=8 count=4 flush=1", "--disk", File("overlay.qcow2")], TimeSpan.FromSeconds(60));
        log.WriteLine($"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains("read-back ok", r.Stdout);
        Assert.Equal(baseData, System.IO.File.ReadAllBytes(File("base.raw")));
        var check = Tool("qemu-img", "check", File("overlay.qcow2"));
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Equal(0, Tool("qemu-img", "convert", "-O", "raw", File("overlay.qcow2"), File("out.raw")).ExitCode);
        var expected = (byte[])baseData.Clone();
        Pattern(8, 4).CopyTo(expected, 8 * 512);
        Assert.Equal(expected, System.IO.File.ReadAllBytes(File("out.raw")));
    }

    [KvmFact]
    public void KillNineDuringWritesLeavesAConsistentImage()
    {
        // The guest prints "read sectors 0..7" just before it submits a 1 MiB write (256 new 4 KiB clusters): kill -9
        // the VMM a little after that line appears, at a different moment each round.
        int hits = 0;
        for (int round = 0; round < 10; round++)
        {
            MakeOverlay(4096);
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Support.Kiln.CliDll, "run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline",
                         $"test=virtio-blk transport=pci write=1 sector={round * 2048} count=2048 bench=1 mib=8 req=64 ops=2000",
                         "--disk", File("overlay.qcow2") })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            var seen = new System.Text.StringBuilder();
            string? line;
            while ((line = p.StandardOutput.ReadLine()) is not null)
            {
                seen.AppendLine(line);
                if (line.Contains("read sectors 0..7"))
                    break;
            }
            var wait = Stopwatch.StartNew();
            while (wait.Elapsed.TotalMilliseconds < round * 0.7)
                Thread.SpinWait(100);
            bool killed = !p.HasExited;
            if (killed)
                p.Kill(entireProcessTree: true); // SIGKILL: no flush, no dispose
            p.WaitForExit();
            string output = seen + p.StandardOutput.ReadToEnd();
            bool wrote = output.Contains("read-back ok");
            log.WriteLine($"round {round}: killed={killed} wrote={wrote}\n{stderr.Result}");
            if (killed && !wrote)
                hits++;
            var check = Tool("qemu-img", "check", File("overlay.qcow2"));
            log.WriteLine(check.Stdout);
            Assert.True(check.ExitCode is 0 or 3, $"round {round}: qemu-img check exit {check.ExitCode}\n{check.Stdout}{check.Stderr}");
            System.IO.File.Delete(File("overlay.qcow2"));
        }
        log.WriteLine($"{hits} rounds were killed before the write completed");
    }
}
