using Microsoft.Win32.SafeHandles;

namespace Kiln.Storage;

/// <summary>A raw image: disk byte N is file byte N. Works over a regular file or a block device, with positional
/// I/O (pread/pwrite through <see cref="RandomAccess"/>), so concurrent requests never share a file position.</summary>
public sealed class RawDiskBackend : IDiskBackend, IAllocationMap
{
    private const int ZeroChunk = 1 << 20;
    private static readonly byte[] s_zeroes = new byte[ZeroChunk];

    private readonly SafeFileHandle _handle;

    private RawDiskBackend(SafeFileHandle handle, ulong capacity, bool readOnly, string path)
    {
        _handle = handle;
        Capacity = capacity;
        IsReadOnly = readOnly;
        Path = path;
    }

    public string Path { get; }
    public ulong Capacity { get; }
    public bool IsReadOnly { get; }

    /// <summary>Opens an image. The capacity is the file's size (for a block device, the device's size).</summary>
    public static RawDiskBackend Open(string path, bool readOnly)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite,
                FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiskException($"{path}: cannot open disk image: {e.Message}", e);
        }
        try
        {
            long length = MeasureLength(handle);
            if (length <= 0)
                throw new DiskException($"{path}: disk image is empty");
            return new RawDiskBackend(handle, (ulong)length, readOnly, path);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>fstat gives a regular file's size; a block device reports 0 there, so seek to its end instead.</summary>
    private static long MeasureLength(SafeFileHandle handle)
    {
        long length = RandomAccess.GetLength(handle);
        if (length > 0)
            return length;
        using var stream = new FileStream(handle, FileAccess.Read, 0);
        return stream.Seek(0, SeekOrigin.End);
    }

    public void Read(ulong offset, Span<byte> destination)
    {
        CheckRange(offset, (ulong)destination.Length);
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, destination, (long)offset);
            if (n <= 0)
            {
                destination.Clear(); // past the end of a file that shrank under us
                return;
            }
            destination = destination[n..];
            offset += (ulong)n;
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        CheckWritable();
        CheckRange(offset, (ulong)source.Length);
        RandomAccess.Write(_handle, source, (long)offset);
    }

    public void Flush()
    {
        if (!IsReadOnly)
            RandomAccess.FlushToDisk(_handle);
    }

    public void Discard(ulong offset, ulong length) => WriteZeroes(offset, length, mayUnmap: true);

    public void WriteZeroes(ulong offset, ulong length, bool mayUnmap)
    {
        CheckWritable();
        CheckRange(offset, length);
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, ZeroChunk);
            RandomAccess.Write(_handle, s_zeroes.AsSpan(0, chunk), (long)offset);
            offset += (ulong)chunk;
            length -= (ulong)chunk;
        }
    }

    /// <summary>A hole (SEEK_DATA finds no data before the range ends); false where the file system cannot tell.</summary>
    public bool IsKnownZero(ulong offset, ulong length)
    {
        CheckRange(offset, length);
        return Kiln.Interop.FileExtents.NextData(_handle, (long)offset) is long next && (ulong)next >= offset + length;
    }

    private void CheckRange(ulong offset, ulong length)
    {
        if (offset > Capacity || length > Capacity - offset)
            throw new DiskException($"{Path}: access [{offset}, +{length}) is outside the disk ({Capacity} bytes)");
    }

    private void CheckWritable()
    {
        if (IsReadOnly)
            throw new DiskException($"{Path}: disk is read-only");
    }

    public void Dispose() => _handle.Dispose();
}
