using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>Which file a path names, host-wide: this boot's id (/proc/sys/kernel/random/boot_id, so another host or
/// boot never matches) plus the file's device and inode (statx). Two paths, even in different mount namespaces,
/// name the same file exactly when their identities are equal.</summary>
public readonly partial record struct FileIdentity(Guid Boot, uint DeviceMajor, uint DeviceMinor, ulong Inode)
{
    public const int Size = 32;
    private const int AtFdCwd = -100;
    private const uint StatxIno = 0x100;

    private static readonly Lazy<Guid> s_boot = new(() =>
    {
        try
        {
            return Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out var id) ? id : Guid.Empty;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Guid.Empty;
        }
    });

    /// <summary>Unknown (no boot id or no statx): never equal to a real identity.</summary>
    public bool IsKnown => Boot != Guid.Empty;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);

    /// <summary>The identity of an existing file; default when it cannot be told.</summary>
    public static FileIdentity Of(string path)
    {
        if (s_boot.Value == Guid.Empty)
            return default;
        var buffer = new byte[256]; // struct statx
        if (statx(AtFdCwd, path, 0, StatxIno, buffer) != 0)
            return default;
        var span = buffer.AsSpan();
        return new FileIdentity(s_boot.Value, BinaryPrimitives.ReadUInt32LittleEndian(span[136..]),
            BinaryPrimitives.ReadUInt32LittleEndian(span[140..]), BinaryPrimitives.ReadUInt64LittleEndian(span[32..]));
    }

    public void WriteTo(Span<byte> target)
    {
        Boot.TryWriteBytes(target);
        BinaryPrimitives.WriteUInt32LittleEndian(target[16..], DeviceMajor);
        BinaryPrimitives.WriteUInt32LittleEndian(target[20..], DeviceMinor);
        BinaryPrimitives.WriteUInt64LittleEndian(target[24..], Inode);
    }

    public static FileIdentity ReadFrom(ReadOnlySpan<byte> source) =>
        new(new Guid(source[..16]), BinaryPrimitives.ReadUInt32LittleEndian(source[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[20..]), BinaryPrimitives.ReadUInt64LittleEndian(source[24..]));
}
