using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>Whole-VM snapshots through the real CLI: a running test guest is saved over its control socket and
/// resumed by `kiln run --restore` in a new VMM process, where it must continue exactly where it stopped.</summary>
public sealed class SnapshotGuestTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-snap-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A VMM started with a control socket, its stdout (the guest console) collected.</summary>
    private sealed class Vmm : IDisposable
    {
        private readonly StringBuilder _out = new();
        public Process Process { get; }
        public string Socket { get; }

        public Vmm(string socket, IEnumerable<string> args)
        {
            Socket = socket;
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Support.Kiln.CliDll, "run" }.Concat(args).Concat(["--control-socket", socket]))
                psi.ArgumentList.Add(a);
            Process = Process.Start(psi)!;
            // Raw bytes, not lines: a line the save cut in two must concatenate with its end in the restored VMM.
            _reader = new Thread(() =>
            {
                var buffer = new byte[4096];
                int n;
                while ((n = Process.StandardOutput.BaseStream.Read(buffer)) > 0)
                    lock (_out)
                        _out.Append(Encoding.Latin1.GetString(buffer, 0, n));
            }) { IsBackground = true };
            _reader.Start();
            Process.ErrorDataReceived += (_, e) => { lock (_err) _err.Append(e.Data).Append('\n'); };
            Process.BeginErrorReadLine();
        }

        private readonly Thread _reader;
        private readonly StringBuilder _err = new();

        /// <summary>The console once the VMM has exited and its pipe is drained.</summary>
        public string FinalOutput
        {
            get
            {
                Process.WaitForExit();
                _reader.Join(5000);
                return Output;
            }
        }

        public string Output
        {
            get
            {
                lock (_out)
                    return _out.ToString();
            }
        }

        public void WaitFor(string text, TimeSpan timeout)
        {
            var sw = Stopwatch.StartNew();
            while (!Output.Contains(text, StringComparison.Ordinal))
            {
                Assert.False(Process.HasExited && !Output.Contains(text, StringComparison.Ordinal), $"VMM exited before '{text}':\n{Output}{_err}");
                Assert.True(sw.Elapsed < timeout, $"no '{text}' within {timeout}:\n{Output}");
                Thread.Sleep(20);
            }
        }

        public JsonElement Request(string cmd, string? file = null)
        {
            using var s = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(Socket));
            var line = JsonSerializer.Serialize(new Dictionary<string, string?> { ["cmd"] = cmd, ["file"] = file }) + "\n";
            s.Send(Encoding.UTF8.GetBytes(line));
            using var reader = new StreamReader(new NetworkStream(s));
            string reply = reader.ReadLine() ?? throw new InvalidOperationException(
                $"the VMM closed its control socket without answering '{cmd}':\n{Output}{_err}");
            return JsonDocument.Parse(reply).RootElement;
        }

        public void Dispose()
        {
            if (!Process.HasExited)
                Process.Kill();
            Process.WaitForExit();
            Process.Dispose();
        }
    }

    /// <summary>The tick numbers in console text, in order.</summary>
    private static List<long> Ticks(string text) =>
        [.. Regex.Matches(text, @"^tick (\d+)", RegexOptions.Multiline).Select(m => long.Parse(m.Groups[1].Value))];

    private static void AssertConsecutive(List<long> ticks, long count)
    {
        Assert.Equal(count, ticks.Count);
        for (int i = 0; i < ticks.Count; i++)
            Assert.True(ticks[i] == i, $"tick {i} is {ticks[i]}: a gap or a repeat");
    }

    /// <summary>Saves the guest mid-run, restores it in a new process, and returns both consoles.</summary>
    private (string Before, string After, ProcessRunner.Result Restore) SaveAndRestore(string[] runArgs, string waitFor,
        string[]? restoreArgs = null)
    {
        string snap = Path.Combine(_dir, "vm.ksnap");
        string before;
        using (var vmm = new Vmm(Path.Combine(_dir, "a.sock"), runArgs))
        {
            vmm.WaitFor(waitFor, TimeSpan.FromSeconds(60));
            var saved = vmm.Request("save", snap);
            Assert.True(saved.GetProperty("ok").GetBoolean(), saved.ToString());
            log.WriteLine($"save: {saved}");
            Assert.True(vmm.Process.WaitForExit(20_000), "the VMM did not stop after save");
            before = vmm.FinalOutput;
        }
        var restore = Support.Kiln.Run(["run", "--restore", snap, .. restoreArgs ?? []], TimeSpan.FromSeconds(120));
        log.WriteLine($"restore: exit {restore.ExitCode} in {restore.Elapsed.TotalMilliseconds:F0} ms\n{restore.Stderr}");
        return (before, restore.Stdout, restore);
    }

    [KvmFact]
    public void CounterContinuesInANewVmmWithNoGapOrRepeat()
    {
        const long count = 400;
        var (before, after, restore) = SaveAndRestore(
            ["--kernel", TestGuest.Path, "--memory", "64M", "--cmdline", $"test=counter count={count} delay_us=10000 fill_mib=8"],
            "tick 40");
        Assert.Equal(Support.Kiln.DebugExitStatus(0), restore.ExitCode);
        Assert.DoesNotContain("counter start", after); // it continued; it did not boot again
        Assert.Contains("counter done", after);         // and its filled RAM came back intact
        // A line cut by the save continues in the new VMM: the consoles concatenate.
        AssertConsecutive(Ticks(before + after), count);
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void VirtioBlockAndRngGuestKeepsUsingThemAfterRestore(string transport)
    {
        string disk = Path.Combine(_dir, "disk.raw");
        File.WriteAllBytes(disk, new byte[1 << 20]);
        const long count = 300;
        var (before, after, restore) = SaveAndRestore(
            ["--kernel", TestGuest.Path, "--memory", "64M", "--transport", transport, "--disk", disk, "--rng",
             "--cmdline", $"test=counter count={count} delay_us=5000 blk=1 rng=1 transport={transport}"],
            "tick 30 blk ok rng ok");
        Assert.True(restore.ExitCode == Support.Kiln.DebugExitStatus(0), restore.Stdout + restore.Stderr);
        Assert.Contains("counter done", after);
        Assert.DoesNotContain("failed", after);
        AssertConsecutive(Ticks(before + after), count);
        Assert.Equal(count, Regex.Matches(before + after, "blk ok rng ok").Count);
    }

    [KvmFact]
    public void CorruptSnapshotIsRefusedWithOneClearLine()
    {
        string snap = Path.Combine(_dir, "vm.ksnap");
        using (var vmm = new Vmm(Path.Combine(_dir, "c.sock"),
                   ["--kernel", TestGuest.Path, "--memory", "32M", "--cmdline", "test=counter delay_us=10000"]))
        {
            vmm.WaitFor("tick 5", TimeSpan.FromSeconds(60));
            var r = vmm.Request("snapshot", snap); // pause, write, resume: the guest goes on
            Assert.True(r.GetProperty("ok").GetBoolean(), r.ToString());
            int ticks = Ticks(vmm.Output).Count;
            vmm.WaitFor($"tick {ticks + 5}", TimeSpan.FromSeconds(30));
            Assert.True(vmm.Request("stop").GetProperty("ok").GetBoolean());
        }
        var bytes = File.ReadAllBytes(snap);
        // A flipped bit in the machine state (just before the first RAM section's page).
        int stateByte = Array.IndexOf(bytes, (byte)'k', 200); // inside "kiln-machine-state-1" or later
        var bad = (byte[])bytes.Clone();
        bad[stateByte + 40] ^= 0x10;
        File.WriteAllBytes(snap, bad);
        var refused = Support.Kiln.Run(["run", "--restore", snap]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("snapshot corrupt", refused.Stderr);
        Assert.Single(refused.Stderr.Trim().Split('\n'));

        File.WriteAllBytes(snap, bytes[..(bytes.Length / 3)]);
        refused = Support.Kiln.Run(["run", "--restore", snap]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("truncated", refused.Stderr);

        // A flipped bit in guest RAM is what --verify is for.
        bad = (byte[])bytes.Clone();
        long firstPage = FirstNonZeroRamByte(bad);
        bad[firstPage] ^= 0x01;
        File.WriteAllBytes(snap, bad);
        refused = Support.Kiln.Run(["run", "--restore", snap, "--verify"]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("RAM section", refused.Stderr);
        Assert.Contains("fails its CRC", refused.Stderr);

        var mixed = Support.Kiln.Run(["run", "--restore", snap, "--memory", "1G"]);
        Assert.Equal(2, mixed.ExitCode);
        Assert.Contains("--memory cannot be combined with --restore", mixed.Stderr);
    }

    /// <summary>An offset inside the first RAM section that holds data.</summary>
    private long FirstNonZeroRamByte(byte[] file)
    {
        string copy = Path.Combine(_dir, "layout.ksnap");
        File.WriteAllBytes(copy, file);
        long ram;
        using (var snapshot = global::Kiln.Vmm.Snapshot.SnapshotFile.Open(copy))
            ram = snapshot.Ram[0].FileOffset;
        while (ram < file.Length && file[ram] == 0)
            ram++;
        return ram;
    }
}
