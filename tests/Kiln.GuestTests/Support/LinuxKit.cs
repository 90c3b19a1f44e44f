using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.GuestTests.Support;

/// <summary>The guest kit's Linux (kernel + busybox initramfs from `kiln guest-kit build`, cached in
/// /var/cache/kiln/guest-kit). The first use builds the kit if the cache lacks it; a failed build fails the test (it
/// never skips: a machine with /dev/kvm must be able to boot Linux).</summary>
public static partial class LinuxKit
{
    private static readonly Lazy<string> Built = new(Build);

    /// <summary>Directory of the kit: vmlinux, initramfs.cpio, ...</summary>
    public static string Directory => Built.Value;

    public static string Kernel => Path.Combine(Directory, "vmlinux");
    public static string Initramfs => Path.Combine(Directory, "initramfs.cpio");

    /// <summary>A console line that means the guest kernel gave up (tests stop the VM there instead of waiting).</summary>
    public static bool IsPanic(string line) => line.Contains("Kernel panic", StringComparison.Ordinal);

    /// <summary>The kit's recommended command line plus EXTRA.</summary>
    public static string Cmdline(string extra) => global::Kiln.GuestKit.GuestKitOptions.RecommendedCmdline + " " + extra;

    [GeneratedRegex(@"kernel\s+(\S+)/vmlinux")]
    private static partial Regex KernelLine();

    private static string Build()
    {
        var r = Kiln.Run(["guest-kit", "build"], TimeSpan.FromMinutes(60));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"kiln guest-kit build failed:\n{r.Stdout}\n{r.Stderr}");
        var m = KernelLine().Match(r.Stdout);
        if (!m.Success)
            throw new InvalidOperationException($"kiln guest-kit build printed no kernel path:\n{r.Stdout}");
        return m.Groups[1].Value;
    }
}

/// <summary>Runs a command while reading its output line by line, so a test can stop it as soon as it has seen
/// what it waits for (SIGTERM, then a kill after a grace period).</summary>
public static class StreamingProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, bool TimedOut, bool StoppedEarly);

    public static Result Run(string file, IEnumerable<string> args, TimeSpan timeout, Func<string, bool>? stopWhen = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        var stdout = new StringBuilder();
        var stop = new ManualResetEventSlim();
        var reader = new Thread(() =>
        {
            string? line;
            while ((line = p.StandardOutput.ReadLine()) is not null)
            {
                lock (stdout)
                    stdout.Append(line).Append('\n');
                if (stopWhen is not null && stopWhen(line))
                    stop.Set();
            }
        }) { IsBackground = true };
        reader.Start();
        var stderr = p.StandardError.ReadToEndAsync();
        bool stoppedEarly = false, timedOut = false;
        while (!p.HasExited)
        {
            if (stop.Wait(200))
            {
                stoppedEarly = true;
                Terminate(p.Id);
                if (!p.WaitForExit(TimeSpan.FromSeconds(20)))
                    p.Kill(entireProcessTree: true);
                break;
            }
            if (sw.Elapsed > timeout)
            {
                timedOut = true;
                p.Kill(entireProcessTree: true);
                break;
            }
        }
        p.WaitForExit();
        reader.Join(TimeSpan.FromSeconds(10));
        string output;
        lock (stdout)
            output = stdout.ToString();
        return new Result(p.ExitCode, output, stderr.Result, sw.Elapsed, timedOut, stoppedEarly);
    }

    /// <summary>SIGTERM (kiln stops the VM and exits 0 on it).</summary>
    private static void Terminate(int pid) => Process.Start("kill", ["-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit();
}
