namespace Kiln.Tests.Boot;

/// <summary>A private temporary directory for one test's kernel, initrd and corrupt copies.</summary>
internal sealed class TempFiles : IDisposable
{
    public TempFiles() => Directory = System.IO.Directory.CreateTempSubdirectory("kiln-boot-test-").FullName;

    public string Directory { get; }

    public string Write(string name, ReadOnlySpan<byte> bytes)
    {
        string path = Path.Combine(Directory, name);
        File.WriteAllBytes(path, bytes.ToArray());
        return path;
    }

    /// <summary>A file of the given length whose content is a repeating pattern (so loads can be compared).</summary>
    public string WritePattern(string name, int length)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
            bytes[i] = (byte)(i * 7 + 3);
        return Write(name, bytes);
    }

    /// <summary>A sparse file: large without costing disk or time, for "does not fit" checks.</summary>
    public string WriteSparse(string name, long length)
    {
        string path = Path.Combine(Directory, name);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        stream.SetLength(length);
        return path;
    }

    public string PathOf(string name) => Path.Combine(Directory, name);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is not worth failing a test over.
        }
    }
}
