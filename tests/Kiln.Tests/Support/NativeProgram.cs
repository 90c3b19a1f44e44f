using System.Diagnostics;

namespace Kiln.Tests.Support;

/// <summary>Compiles a C file of the test suite with the host's gcc and runs it, for facts only C can tell
/// (struct layouts in kernel headers).</summary>
public static class NativeProgram
{
    public static string CompileAndRun(string sourcePath)
    {
        string exe = Path.Combine(Path.GetTempPath(), $"kiln-{Path.GetFileNameWithoutExtension(sourcePath)}-{Environment.ProcessId}");
        Run("gcc", $"-O0 -Wall -Werror -o {exe} {sourcePath}");
        try
        {
            return Run(exe, "");
        }
        finally
        {
            File.Delete(exe);
        }
    }

    private static string Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"cannot start {file}");
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {stderr}");
        return stdout;
    }
}
