using System.Diagnostics;

namespace Kiln.GuestTests.Support;

/// <summary>The freestanding test guest (guest/), built once per test run with the host's gcc.</summary>
public static class TestGuest
{
    private static readonly Lazy<string> Built = new(Build);

    /// <summary>Path of the multiboot ELF; builds it on first use.</summary>
    public static string Path => Built.Value;

    private static string Build()
    {
        string dir = RepoPaths.Combine("guest");
        var result = ProcessRunner.Run("make", ["-s", "-C", dir], TimeSpan.FromMinutes(2));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"building the test guest failed:\n{result.Stdout}\n{result.Stderr}");
        string elf = System.IO.Path.Combine(dir, "build", "testguest.elf");
        if (!File.Exists(elf))
            throw new FileNotFoundException("make did not produce the test guest", elf);
        return elf;
    }
}

/// <summary>Runs a command to completion (or kills it at the timeout), capturing its output.</summary>
public static class ProcessRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, bool TimedOut);

    public static Result Run(string file, IEnumerable<string> args, TimeSpan timeout, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
            p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        bool exited = p.WaitForExit(timeout);
        if (!exited)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed, !exited);
    }
}

/// <summary>Runs the real `kiln` CLI (the Kiln.Cli build next to the tests) as a child process.</summary>
public static class Kiln
{
    public static string CliDll { get; } = System.IO.Path.Combine(AppContext.BaseDirectory, "kiln.dll");

    public static ProcessRunner.Result Run(IEnumerable<string> args, TimeSpan? timeout = null, string? stdin = null) =>
        ProcessRunner.Run("dotnet", [CliDll, .. args], timeout ?? TimeSpan.FromSeconds(60), stdin);

    /// <summary>Boots the test guest with a test command line.</summary>
    public static ProcessRunner.Result RunTestGuest(string cmdline, params string[] extra) =>
        Run(["run", "--kernel", TestGuest.Path, "--cmdline", cmdline, "--memory", "64M", .. extra]);

    /// <summary>QEMU's isa-debug-exit status for a guest-written value.</summary>
    public static int DebugExitStatus(int value) => ((value << 1) | 1) & 0xFF;
}
