using System.Diagnostics;
using Kiln.Cli;

namespace Kiln.Tests.Cli;

/// <summary>Every verb, given missing, malformed or conflicting arguments (or an unreachable daemon), prints exactly
/// one line on stderr and exits 2 (usage) or 1 (failure): never a stack trace. Runs the real `kiln` (kiln.dll next
/// to the tests) as a child process, as a user would.</summary>
public sealed class VerbErrorTests
{
    private const string NoDaemon = "unix:///nonexistent/kiln-verb-error-test.sock";

    /// <summary>(arguments, expected exit status) for every verb in the table, plus the global parser's own cases.</summary>
    public static TheoryData<string[], int> Cases()
    {
        var data = new TheoryData<string[], int>
        {
            { ["no-such-verb"], 2 },
            { ["--no-such-global", "list"], 2 },
            { ["-c"], 2 },
            { ["run"], 2 },
            { ["run", "--kernel"], 2 },
            { ["run", "--kernel", "/k", "--memory", "lots"], 2 },
            { ["run", "--kernel", "/k", "--cpus", "0"], 2 },
            { ["run", "--kernel", "/k", "--memory", "1K"], 2 },
            { ["run", "--kernel", "/k", "--disk", "/d,format=vmdk"], 2 },
            { ["run", "--kernel", "/k", "--net", "tap=a,mac=01:00:5e:00:00:01"], 2 },
            { ["run", "--kernel", "/k", "--transport", "mmio", "--rng", .. Enumerable.Range(0, 9).SelectMany(i => new[] { "--disk", $"/d{i}" })], 2 },
            { ["run", "--restore", "/s", "--incoming", "tcp:0:0"], 2 },
            { ["run", "--restore", "/s", "--memory", "64M"], 2 },
            { ["run", "--verify", "--kernel", "/k"], 2 },
            { ["run", "--kernel", "/nonexistent/kernel"], 1 },
            { ["run", "--restore", "/nonexistent/snapshot"], 1 },
            { ["img"], 2 },
            { ["img", "create"], 2 },
            { ["img", "create", "-f", "vmdk", "/tmp/x", "1M"], 2 },
            { ["img", "info", "/nonexistent/image"], 1 },
            { ["img", "resize", "/x", "-1M"], 2 },
            { ["guest-kit"], 2 },
            { ["guest-kit", "build", "--jobs", "many"], 2 },
            { ["daemon", "--tcp", "127.0.0.1:1"], 2 },
            { ["vmm-standby", "--bogus"], 2 },
            { ["migrate"], 2 },
            { ["migrate", "--live", "--abort", "x"], 2 },
            { ["migrate", "--live", "x", "http://elsewhere"], 2 },
            { ["migrate", "--live", "x", "tcp://127.0.0.1:1", "-c", NoDaemon], 1 },
            { ["snapshot-verify"], 2 },
            { ["snapshot-verify", "/nonexistent/file"], 1 },
            { ["list", "-c", "ftp://nowhere"], 2 },
            { ["-c", NoDaemon, "list"], 1 },
            { ["shutdown", "x", "--timeout", "soon"], 2 },
        };
        foreach (var verb in VerbTable.All.Where(v => v.Connects && v.Name != "migrate"))
        {
            data.Add([verb.Name, "--no-such-option", "-c", NoDaemon], 2);
            // Missing arguments are a usage error; verbs that need none reach for the (absent) daemon instead.
            data.Add([verb.Name, "-c", NoDaemon], verb.Name is "list" or "event" ? 1 : 2);
            data.Add(["-c", NoDaemon, verb.Name, "x", "y", "z"], 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadArgumentsAreOneLineAndAStatus(string[] args, int status)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kiln.dll"));
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("KILN_DEFAULT_URI");
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = await p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "kiln did not exit");
        await stdout;
        string context = $"kiln {string.Join(' ', args)} -> {p.ExitCode}\n{stderr}";
        Assert.True(status == p.ExitCode, context);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1, context);
        Assert.DoesNotContain("   at ", stderr);
        Assert.DoesNotContain("Unhandled exception", stderr);
    }
}
