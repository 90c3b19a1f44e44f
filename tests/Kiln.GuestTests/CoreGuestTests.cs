using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Kiln core, end to end: the `kiln run` CLI boots the multiboot test guest under KVM.</summary>
public sealed class CoreGuestTests(ITestOutputHelper log)
{
    private ProcessRunner.Result Boot(string cmdline, params string[] extra)
    {
        var r = Support.Kiln.RunTestGuest(cmdline, extra);
        log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalMilliseconds:F0} ms\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        Assert.False(r.TimedOut, "kiln did not finish in time");
        return r;
    }

    [KvmFact]
    public void GuestPrintsAndExitsWithChosenCode()
    {
        var r = Boot("test=exit code=5 msg=hello-from-test");
        Assert.Contains("hello-from-test", r.Stdout);
        Assert.Contains("exit 5", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(5), r.ExitCode);
    }

    [KvmFact]
    public void TwoVcpusBothRun()
    {
        var r = Boot("test=smp cpus=2", "--cpus", "2");
        Assert.Contains("cpus online: 2", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }

    [KvmFact]
    public void FourVcpusHaveDistinctApicIds()
    {
        var r = Boot("test=smp cpus=4", "--cpus", "4");
        Assert.Contains("cpus online: 4", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }

    [KvmFact]
    public void UnknownPortsReadAllOnesAndDoNotStopTheVm()
    {
        var r = Boot("test=ports", "--stats");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Matches(@"unhandled port reads [1-9]", r.Stderr);
    }

    [KvmFact]
    public void TripleFaultExitsNonZeroWithAMessage()
    {
        var r = Boot("test=triple");
        Assert.Contains("about to triple fault", r.Stdout);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("triple fault", r.Stderr);
    }

    [KvmFact]
    public void GuestExceptionIsReportedByTheGuestKernel()
    {
        var r = Boot("test=fault");
        Assert.Contains("guest: exception", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0x7e), r.ExitCode);
    }

    [KvmFact]
    public void GuestResetRebootsAndCmosRamSurvives()
    {
        var r = Boot("test=reboot boots=3", "--stats");
        Assert.Contains("boot 1", r.Stdout);
        Assert.Contains("boot 3", r.Stdout);
        Assert.Contains("boots: 3", r.Stderr);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }

    [KvmFact]
    public void NoRebootExitsWhenTheGuestResets()
    {
        var r = Boot("test=reboot boots=3", "--no-reboot");
        Assert.Contains("boot 1", r.Stdout);
        Assert.DoesNotContain("boot 2", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [KvmFact]
    public void SigtermStopsTheVmCleanly()
    {
        // A guest that never ends on its own: port 0x80 writes are absorbed without output.
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        };
        foreach (var a in new[] { Support.Kiln.CliDll, "run", "--kernel", TestGuest.Path, "--memory", "64M",
                     "--cmdline", "test=pio count=4000000000 port=0x80" })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Thread.Sleep(1500);
        Assert.False(p.HasExited, "the guest stopped by itself");
        System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
        Assert.True(p.WaitForExit(10_000), "kiln did not stop on SIGTERM");
        log.WriteLine(stderr.Result);
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("terminating on signal SIGTERM", stderr.Result);
        Assert.Contains("pio start", stdout.Result);
    }

    [KvmFact]
    public void CtrlAXOnTheConsoleQuits()
    {
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline", "test=pio count=4000000000 port=0x80"],
            TimeSpan.FromSeconds(20), stdin: "\u0001x");
        log.WriteLine(r.Stderr);
        Assert.False(r.TimedOut);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("C-a x", r.Stderr);
    }

    [KvmFact]
    public void PipedInputReachesTheGuestByteForByte()
    {
        // Typed ahead before the guest is up, more than the UART's FIFO holds, with an escaped C-a in the middle.
        string input = new string('z', 100) + "ab\u0001\u0001c" + "q";
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "64M", "--cmdline", "test=echo"],
            TimeSpan.FromSeconds(30), stdin: input);
        log.WriteLine(r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
        Assert.Contains(string.Concat(Enumerable.Repeat("<7a>", 100)) + "<61><62><1><63>", r.Stdout);
        Assert.Contains("echo done 104", r.Stdout);
    }

    [KvmFact]
    public void GuestClockIsTheHostsDate()
    {
        var r = Boot("test=rtc");
        var m = System.Text.RegularExpressions.Regex.Match(r.Stdout, @"rtc (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)");
        Assert.True(m.Success, r.Stdout);
        var guest = DateTime.ParseExact(m.Groups[1].Value, "yyyy-MM-dd HH:mm:ss", null,
            System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal);
        Assert.InRange((guest - DateTime.UtcNow).Duration(), TimeSpan.Zero, TimeSpan.FromMinutes(1));
    }

    [KvmFact]
    public void AcpiPowerOffExitsZero()
    {
        var r = Boot("test=poweroff");
        Assert.Contains("powering off", r.Stdout);
        Assert.DoesNotContain("still running", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [KvmFact]
    public void MissingKernelIsOneClearLine()
    {
        var r = Support.Kiln.Run(["run", "--kernel", "/nonexistent/vmlinuz"]);
        Assert.Equal(1, r.ExitCode);
        var lines = r.Stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains("/nonexistent/vmlinuz", lines[0]);
    }

    [KvmFact]
    public void GarbageKernelIsOneClearLine()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kiln-garbage-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7919 >> 3)).ToArray());
        try
        {
            var r = Support.Kiln.Run(["run", "--kernel", path]);
            Assert.Equal(1, r.ExitCode);
            var lines = r.Stderr.Trim().Split('\n');
            Assert.Single(lines);
            Assert.Contains(path, lines[0]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [KvmFact]
    public void BadOptionIsAUsageError()
    {
        var r = Support.Kiln.Run(["run", "--kernel", TestGuest.Path, "--memory", "lots"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--memory", r.Stderr);
    }
}
