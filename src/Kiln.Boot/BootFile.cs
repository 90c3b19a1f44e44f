using System.Buffers;
using Kiln.Memory;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Boot;

/// <summary>A kernel or initrd file opened for reading. Every read is bounded by the file's length, and every
/// failure becomes a one-line <see cref="BootException"/> that names the file and its role.</summary>
internal sealed class BootFile : IDisposable
{
    private const int CopyChunk = 1 << 20;

    private readonly SafeFileHandle _handle;

    private BootFile(string path, string role, SafeFileHandle handle, long length)
    {
        Path = path;
        Role = role;
        _handle = handle;
        Length = length;
    }

    public string Path { get; }

    /// <summary>"kernel" or "initrd": how the file is named in error messages.</summary>
    public string Role { get; }

    public long Length { get; }

    public static BootFile Open(string path, string role)
    {
        if (string.IsNullOrEmpty(path))
            throw Failure(role, path, "no file name given");
        if (Directory.Exists(path))
            throw Failure(role, path, "is a directory");
        SafeFileHandle? handle = null;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = RandomAccess.GetLength(handle);
            if (length == 0)
                throw Failure(role, path, "file is empty");
            return new BootFile(path, role, handle, length);
        }
        catch (Exception e) when (e is not BootException)
        {
            handle?.Dispose();
            throw Failure(role, path, e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "file not found",
                UnauthorizedAccessException => "permission denied",
                _ => $"cannot be read ({e.Message})",
            }, e);
        }
    }

    public BootException Fail(string reason, Exception? inner = null) => Failure(Role, Path, reason, inner);

    private static BootException Failure(string role, string path, string reason, Exception? inner = null) =>
        new($"{role} '{path}': {reason}", inner);

    /// <summary>Reads [offset, offset + destination.Length); <paramref name="what"/> names the part for the
    /// "truncated" message.</summary>
    public void ReadExactly(long offset, Span<byte> destination, string what)
    {
        if (offset < 0 || offset > Length || destination.Length > Length - offset)
            throw Truncated(what, (ulong)offset + (ulong)destination.Length);
        ReadAll(offset, destination, what);
    }

    /// <summary>The first <paramref name="maxLength"/> bytes, or the whole file if it is shorter.</summary>
    public byte[] ReadHead(int maxLength)
    {
        var head = new byte[(int)Math.Min(maxLength, Length)];
        ReadAll(0, head, "file header");
        return head;
    }

    /// <summary>Copies [offset, offset + length) of the file to guest memory at <paramref name="address"/>
    /// without holding the whole file on the managed heap.</summary>
    public void CopyToGuest(GuestMemory memory, ulong offset, ulong length, GuestAddress address, string what)
    {
        if (offset > (ulong)Length || length > (ulong)Length - offset)
            throw Truncated(what, offset + length);
        if (!memory.IsValid(address, length))
            throw Fail($"{what} at [{address}, +0x{length:x}) lies outside guest RAM");
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyChunk);
        try
        {
            for (ulong done = 0; done < length;)
            {
                int chunk = (int)Math.Min(length - done, CopyChunk);
                ReadAll((long)(offset + done), buffer.AsSpan(0, chunk), what);
                memory.Write(address + done, buffer.AsSpan(0, chunk));
                done += (ulong)chunk;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public BootException Truncated(string what, ulong neededEnd) =>
        Fail($"file is truncated: {what} needs {neededEnd:#,0} bytes but the file has {Length:#,0}");

    private void ReadAll(long offset, Span<byte> destination, string what)
    {
        try
        {
            while (!destination.IsEmpty)
            {
                int read = RandomAccess.Read(_handle, destination, offset);
                if (read == 0)
                    throw Fail($"file is truncated: it ended while reading the {what} (did it change during boot?)");
                destination = destination[read..];
                offset += read;
            }
        }
        catch (IOException e)
        {
            throw Fail($"cannot be read ({e.Message})", e);
        }
    }

    public void Dispose() => _handle.Dispose();
}
