using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>The guest kit's Linux, live-migrated with its shell in use, then saved and restored. SLOW: one boot (one to
/// two minutes of emulated ring-0 time on PVM hosts) serves both: the shell session, a background counter, a shell
/// variable and a mounted virtio-blk disk must all carry over, and the guest's clock must stay right.</summary>
[Trait("Category", "SlowLinux")]
public sealed partial class LinuxMigrationTests(ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan ShellTimeout = TimeSpan.FromMinutes(3);
    private readonly MigrationPair _pair = new(log);
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-linux-mig-").FullName;
    private VmmProcess? _restored;

    public void Dispose()
    {
        if (_restored is not null)
        {
            log.WriteLine($"--- restored vmm stderr\n{_restored.Stderr}--- restored console\n{_restored.Stdout}");
            _restored.Dispose();
        }
        _pair.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [GeneratedRegex(@"BEFORE c=(\d+)")]
    private static partial Regex Before();

    [GeneratedRegex(@"AFTER x=(\S+) c=(\d+) disk=(\S+) now=(\d+)")]
    private static partial Regex After();

    [GeneratedRegex(@"LATER c=(\d+)")]
    private static partial Regex Later();

    [GeneratedRegex(@"RESTORED x=(\S+) c=(\d+) disk=(\S+) now=(\d+)")]
    private static partial Regex Restored();

    /// <summary>An ext4 image with one file, made on the host (`mkfs.ext4 -d`).</summary>
    private string MakeDisk()
    {
        string tree = Path.Combine(_dir, "tree");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "disk.txt"), "kiln-disk-says-hello\n");
        string image = Path.Combine(_dir, "disk.raw");
        var r = ProcessRunner.Run("mkfs.ext4", ["-q", "-F", "-d", tree, image, "16M"], TimeSpan.FromMinutes(1));
        Assert.True(r.ExitCode == 0, $"mkfs.ext4 failed: {r.Stdout}{r.Stderr}");
        return image;
    }

    /// <summary>Waits for <paramref name="pattern"/> in the VMM's console output (after <paramref name="from"/>
    /// characters) or a crashed command; returns the match, or null for a crash.</summary>
    private static Match? WaitForMatch(VmmProcess vmm, Regex pattern, string what, int from = 0)
    {
        Match? m = null;
        bool crashed = false;
        bool seen = vmm.WaitFor((o, _) =>
        {
            int start = Math.Min(from, o.Length);
            crashed = o.IndexOf(Crash, start, StringComparison.Ordinal) >= 0;
            return (m = pattern.Match(o, start)).Success || crashed || LinuxKit.IsPanic(o);
        }, ShellTimeout);
        if (m is { Success: true })
            return m;
        Assert.True(seen && crashed, $"{what}: not seen on the console:\n{vmm.Stdout[Math.Min(from, vmm.Stdout.Length)..]}");
        return null;
    }

    /// <summary>How the shell reports a command that died. On this PVM host a freshly started process sometimes dies
    /// in its TLS set-up (the FS base lost by the host, guestkit/README.md), migration or not; such a command is
    /// typed again (at most twice), and each time it is logged.</summary>
    private const string Crash = "Segmentation fault";

    /// <summary>Types <paramref name="command"/> and waits for its answer.</summary>
    private Match Ask(VmmProcess vmm, ControlConsole console, string command, Regex answer, string what)
    {
        for (int attempt = 1; ; attempt++)
        {
            int from = vmm.Stdout.Length;
            console.Line(command);
            if (WaitForMatch(vmm, answer, what, from) is { } m)
                return m;
            log.WriteLine($"{what}: a command crashed (attempt {attempt}):\n{vmm.Stdout[from..]}");
            Assert.True(attempt < 3, $"{what}: the command crashed {attempt} times");
        }
    }

    private static long Number(Match m, int group) => long.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);

    [KvmFact]
    public void ShellSessionCounterAndDiskSurviveALiveMigrationAndASaveRestore()
    {
        string disk = MakeDisk();
        string[] machine =
        [
            "--kernel", LinuxKit.Kernel, "--initrd", LinuxKit.Initramfs, "--memory", "256M",
            "--disk", disk + ",format=raw", "--cmdline", LinuxKit.Cmdline(""),
        ];
        var sw = Stopwatch.StartNew();
        var source = _pair.StartSource(machine);
        Assert.True(source.WaitFor((o, _) => o.Contains("KILN-INIT-READY") || LinuxKit.IsPanic(o), TimeSpan.FromMinutes(12)),
            "the source Linux did not reach its shell");
        Assert.DoesNotContain("Kernel panic", source.Stdout);
        log.WriteLine($"shell after {sw.Elapsed.TotalSeconds:F0} s");

        // State that lives in the shell (a variable), in a background process (a counter in tmpfs, bumped every
        // second by timers), and in the kernel (a mounted virtio-blk file system).
        // Only shell builtins where possible (every fork costs emulated kernel time, and a new process may crash on
        // this host); the counter is read until it is not empty, as the loop's `>` truncates before it writes.
        const string readCounter = "c=; while [ -z \"$c\" ]; do read c < /tmp/c; done";
        using (var console = new ControlConsole(_pair.SourceSocket))
        {
            Ask(source, console, "mount -t ext4 /dev/vda /mnt && echo MOUNTED-$((40+2))", new Regex("MOUNTED-42"), "mount");
            console.Line("X=moved-$((6*7)); (i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 1; done) &");
            Ask(source, console, $"sleep 3; {readCounter}; echo BEFORE c=$c", Before(), "the counter before the move");
        }
        long before = Number(Before().Match(source.Stdout), 1);
        Assert.True(before >= 1, $"the counter did not run ({before})");

        var (dest, port) = _pair.StartDestination(machine);
        using (var watch = new VmmProcess.Watch(_pair.SourceSocket))
        {
            Assert.True(_pair.Migrate(port).GetProperty("ok").GetBoolean());
            var done = watch.Until(TimeSpan.FromSeconds(180), "migrated", "migration-failed");
            foreach (var e in watch.Events)
                log.WriteLine(e.ToString());
            Assert.Equal("migrated", done?.GetProperty("event").GetString());
            log.WriteLine($"migrated: downtime {done!.Value.GetProperty("downtimeMs").GetDouble():0.0} ms, " +
                          $"total {done.Value.GetProperty("totalMs").GetDouble():0} ms");
        }
        Assert.True(source.WaitForExit(TimeSpan.FromSeconds(30)), "the source VMM did not exit after the move");

        // The destination's shell answers: same variable, the counter went on, the disk reads, the clock is today's.
        using (var console = new ControlConsole(_pair.DestinationSocket))
        {
            var after = Ask(dest, console, $"{readCounter}; read d < /mnt/disk.txt; echo AFTER x=$X c=$c disk=$d now=$(date +%s)",
                After(), "the shell after the move");
            Assert.Equal("moved-42", after.Groups[1].Value);
            long c = Number(after, 2);
            Assert.True(c >= before, $"the counter went back: {before} before the move, {c} after");
            Assert.Equal("kiln-disk-says-hello", after.Groups[3].Value);
            AssertClockNow(Number(after, 4));
            long later = Number(Ask(dest, console, $"sleep 3; {readCounter}; echo LATER c=$c", Later(), "the counter on the destination"), 1);
            Assert.True(later > c, $"the counter stopped on the destination ({c}, then {later})");
        }

        // Save the migrated guest and restore it in a third VMM: the same session answers again.
        string snapshot = Path.Combine(_dir, "linux.snap");
        var saved = VmmProcess.Control(_pair.DestinationSocket, $"{{\"cmd\":\"save\",\"file\":\"{snapshot}\"}}");
        Assert.True(saved.GetProperty("ok").GetBoolean(), saved.ToString());
        Assert.True(dest.WaitForExit(TimeSpan.FromSeconds(30)), "the destination VMM did not stop after save");
        string socket = Path.Combine(_dir, "restored.sock");
        _restored = new VmmProcess(null, ["run", "--restore", snapshot, "--control-socket", socket]);
        Assert.True(_restored.WaitFor((_, _) => File.Exists(socket), TimeSpan.FromSeconds(60)), "the restored VMM did not start");
        Thread.Sleep(500);
        using (var console = new ControlConsole(socket))
        {
            var restored = Ask(_restored, console,
                $"{readCounter}; read d < /mnt/disk.txt; echo RESTORED x=$X c=$c disk=$d now=$(date +%s)",
                Restored(), "the shell after the restore");
            Assert.Equal("moved-42", restored.Groups[1].Value);
            Assert.Equal("kiln-disk-says-hello", restored.Groups[3].Value);
            AssertClockNow(Number(restored, 4));
        }
    }

    /// <summary>The guest's wall clock (date +%s, read a few emulated seconds after the host asked) is the host's.</summary>
    private static void AssertClockNow(long guestSeconds)
    {
        long host = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.InRange(guestSeconds, host - 60, host + 5);
    }
}
