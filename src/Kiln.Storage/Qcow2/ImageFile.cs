using Microsoft.Win32.SafeHandles;

namespace Kiln.Storage.Qcow2;

/// <summary>The host file under a qcow2 image: positional reads and writes, fsync, and the file's length as this
/// process has extended it. Metadata reads must be complete (a short read is a truncated image). Tests can make
/// writes fail after a count of successful ones, to simulate a crash between metadata steps.</summary>
internal sealed class ImageFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private long _length;

    private ImageFile(SafeFileHandle handle, string path, bool readOnly)
    {
        _handle = handle;
        Path = path;
        ReadOnly = readOnly;
        _length = RandomAccess.GetLength(handle);
    }

    public string Path { get; }
    public bool ReadOnly { get; }
    public ulong Length => (ulong)_length;

    /// <summary>When set, the write that would be number N+1 throws instead (crash simulation).</summary>
    public int? WritesBeforeFailure { get; set; }

    public int WriteCount { get; private set; }

    public static ImageFile Open(string path, bool readOnly)
    {
        try
        {
            var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
            return new ImageFile(handle, path, readOnly);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw OpenFailed(path, e);
        }
    }

    /// <summary>One line for a failed open (the runtime's own messages may be bare resource keys).</summary>
    public static DiskException OpenFailed(string path, Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => new DiskException($"{path}: no such file", e),
        UnauthorizedAccessException => new DiskException($"{path}: permission denied", e),
        _ => new DiskException($"{path}: cannot open disk image: {e.Message}", e),
    };

    /// <summary>Reads exactly destination.Length bytes; a short read means the structure lies past the end.</summary>
    public void ReadExact(ulong offset, Span<byte> destination, string what)
    {
        if (offset > Length || (ulong)destination.Length > Length - offset)
            throw new ImageFormatException($"{Path}: {what} at offset {offset} lies past the end of the file ({Length} bytes)");
        ReadAvailable(offset, destination);
    }

    /// <summary>Reads what the file holds; bytes past its end read as zero.</summary>
    public void ReadAvailable(ulong offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, destination, (long)offset);
            if (n <= 0)
            {
                destination.Clear();
                return;
            }
            destination = destination[n..];
            offset += (ulong)n;
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        if (ReadOnly)
            throw new DiskException($"{Path}: image is open read-only");
        if (WritesBeforeFailure is int limit && WriteCount >= limit)
            throw new IOException($"{Path}: simulated crash after {limit} writes");
        RandomAccess.Write(_handle, source, (long)offset);
        WriteCount++;
        long end = (long)offset + source.Length;
        if (end > _length)
            _length = end;
    }

    public void Flush()
    {
        if (!ReadOnly)
            RandomAccess.FlushToDisk(_handle);
    }

    public void SetLength(ulong length)
    {
        RandomAccess.SetLength(_handle, (long)length);
        _length = (long)length;
    }

    public void Dispose() => _handle.Dispose();
}
