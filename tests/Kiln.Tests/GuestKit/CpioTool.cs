using System.Diagnostics;

namespace Kiln.Tests.GuestKit;

/// <summary>Runs the host's real `cpio` on an archive: listing (-tv) and extracting (-i) into a fresh directory.</summary>
internal sealed class CpioTool : IDisposable
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "kiln-cpio-test-" + Guid.NewGuid().ToString("N"));

    public CpioTool() => System.IO.Directory.CreateDirectory(Directory);

    public string List(byte[] archive) => Run(archive, "-t", "-v", "--quiet");

    public void Extract(byte[] archive) => Run(archive, "-i", "-d", "--quiet", "--no-absolute-filenames");

    private string Run(byte[] archive, params string[] args)
    {
        var psi = new ProcessStartInfo("cpio")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = Directory,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.BaseStream.Write(archive);
        p.StandardInput.Close();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"cpio {string.Join(' ', args)} failed: {stderr.Result}");
        return stdout.Result;
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
