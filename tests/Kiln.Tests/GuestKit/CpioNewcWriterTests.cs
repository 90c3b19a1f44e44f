using System.Text;
using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class CpioNewcWriterTests
{
    private static byte[] Archive(Action<CpioNewcWriter> fill)
    {
        var ms = new MemoryStream();
        var writer = new CpioNewcWriter(ms);
        fill(writer);
        writer.Finish();
        return ms.ToArray();
    }

    [Fact]
    public void RealCpioListsNamesModesAndSymlinks()
    {
        byte[] archive = Archive(w =>
        {
            w.AddDirectory("bin");
            w.AddFile("bin/tool", Encoding.ASCII.GetBytes("#!/bin/sh\necho hi\n"), 0x1ED);
            w.AddSymlink("bin/sh", "/bin/tool");
            w.AddDirectory("dev");
            w.AddCharDevice("dev/console", 5, 1);
            w.AddFile("etc-note", "x"u8);
        });
        using var cpio = new CpioTool();
        string[] lines = cpio.List(archive).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("drwxr-xr-x", lines[0]);
        Assert.EndsWith(" bin", lines[0]);
        Assert.StartsWith("-rwxr-xr-x", lines[1]);
        Assert.EndsWith(" bin/tool", lines[1]);
        Assert.StartsWith("lrwxrwxrwx", lines[2]);
        Assert.EndsWith(" bin/sh -> /bin/tool", lines[2]);
        Assert.StartsWith("crw-------", lines[4]);
        Assert.Contains("5,", lines[4]);
        Assert.StartsWith("-rw-r--r--", lines[5]);
    }

    [Fact]
    public void RealCpioExtractsContentsAndLinks()
    {
        byte[] odd = Enumerable.Range(0, 4099).Select(i => (byte)(i * 7)).ToArray();
        byte[] archive = Archive(w =>
        {
            w.AddDirectory("a");
            w.AddDirectory("a/b");
            w.AddFile("a/b/odd-sized.bin", odd);
            w.AddFile("a/empty", []);
            w.AddFile("/a/x", "1"u8);
            w.AddSymlink("a/link", "b/odd-sized.bin");
        });
        Assert.Equal(0, archive.Length % 4);
        using var cpio = new CpioTool();
        cpio.Extract(archive);
        Assert.Equal(odd, File.ReadAllBytes(Path.Combine(cpio.Directory, "a/b/odd-sized.bin")));
        Assert.Empty(File.ReadAllBytes(Path.Combine(cpio.Directory, "a/empty")));
        Assert.Equal("1", File.ReadAllText(Path.Combine(cpio.Directory, "a/x")));
        Assert.Equal("b/odd-sized.bin", new FileInfo(Path.Combine(cpio.Directory, "a/link")).LinkTarget);
        Assert.Equal(odd, File.ReadAllBytes(Path.Combine(cpio.Directory, "a/link")));
    }

    [Fact]
    public void HeaderIsNewcWithTrailer()
    {
        byte[] archive = Archive(w => w.AddFile("f", "abc"u8));
        string text = Encoding.ASCII.GetString(archive);
        Assert.StartsWith("070701", text);
        // name size field (offset 94) counts the NUL; file size field (offset 54) is 3.
        Assert.Equal("00000002", text.Substring(94, 8));
        Assert.Equal("00000003", text.Substring(54, 8));
        Assert.Contains("TRAILER!!!\0", text);
    }

    [Fact]
    public void RejectsEmptyAndTrailerNames()
    {
        var w = new CpioNewcWriter(new MemoryStream());
        Assert.Throws<ArgumentException>(() => w.AddFile("/", []));
        Assert.Throws<ArgumentException>(() => w.AddDirectory("TRAILER!!!"));
    }
}
