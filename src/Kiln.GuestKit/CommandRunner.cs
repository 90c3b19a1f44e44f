using System.Diagnostics;

namespace Kiln.GuestKit;

/// <summary>Runs build commands with their output appended to a log file, or captures a short command's output.</summary>
public sealed class CommandRunner(string logPath)
{
    public string LogPath => logPath;

    /// <summary>Runs FILE ARGS in DIR, appending stdout and stderr to the log; throws with the log path if it fails.</summary>
    public void Run(string what, string dir, string file, params string[] args)
    {
        File.AppendAllText(logPath, $"\n### {what}: {file} {string.Join(' ', args)} (in {dir})\n");
        var psi = Start(file, args, dir);
        using var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        using var writer = new StreamWriter(log) { AutoFlush = true };
        using var p = StartOrThrow(psi, what);
        var gate = new object();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (gate) writer.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (gate) writer.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new GuestKitException($"{what} failed ({file} exited with status {p.ExitCode}); see the log: {logPath}");
    }

    private static Process StartOrThrow(ProcessStartInfo psi, string what)
    {
        try
        {
            return Process.Start(psi) ?? throw new GuestKitException($"{what}: cannot start {psi.FileName}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new GuestKitException($"{what}: cannot start {psi.FileName}: {e.Message}");
        }
    }

    /// <summary>Runs a short command and returns its stdout, or null if it cannot run or fails.</summary>
    public static string? Capture(string file, params string[] args)
    {
        try
        {
            using var p = Process.Start(Start(file, args, null));
            if (p is null)
                return null;
            string output = p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static ProcessStartInfo Start(string file, string[] args, string? dir)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = false,
            UseShellExecute = false,
        };
        if (dir is not null)
            psi.WorkingDirectory = dir;
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        return psi;
    }
}
