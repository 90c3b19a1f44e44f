using System.Diagnostics;
using System.Security.Cryptography;
using Kiln.Storage;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>A temporary directory per test, and the real qemu-img/qemu-io as the cross-check.</summary>
public sealed class Qcow2TestFiles : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("kiln-qcow2-").FullName;

    public string this[string name] => Path.Combine(Dir, name);

    public void Dispose() => Directory.Delete(Dir, recursive: true);

    public static (int Code, string Out, string Err) Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, err);
    }

    public static string QemuImg(params string[] args)
    {
        var (code, output, err) = Run("qemu-img", args);
        Assert.True(code == 0, $"qemu-img {string.Join(' ', args)} failed ({code}): {err}{output}");
        return output;
    }

    public static void QemuIo(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        var (code, output, err) = Run("qemu-io", [.. args]);
        Assert.True(code == 0 && !output.Contains("error", StringComparison.OrdinalIgnoreCase), $"qemu-io failed: {err}{output}");
    }

    /// <summary>qemu-img check must call the image clean (leaks allowed when <paramref name="leaksOk"/>).</summary>
    public static void AssertQemuCheckClean(string image, bool leaksOk = false)
    {
        var (code, output, err) = Run("qemu-img", "check", image);
        Assert.True(code == 0 || (leaksOk && code == 3), $"qemu-img check {image} exit {code}:\n{output}{err}");
    }

    /// <summary>What qemu-img says the image's guest-visible bytes are.</summary>
    public byte[] QemuRaw(string image)
    {
        string raw = this[$"{Path.GetFileName(image)}.{Guid.NewGuid():N}.raw"];
        QemuImg("convert", "-O", "raw", image, raw);
        var bytes = File.ReadAllBytes(raw);
        File.Delete(raw);
        return bytes;
    }

    public static byte[] ReadAll(IDiskBackend disk)
    {
        var data = new byte[disk.Capacity];
        disk.Read(0, data);
        return data;
    }

    public static byte[] Random(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
}
