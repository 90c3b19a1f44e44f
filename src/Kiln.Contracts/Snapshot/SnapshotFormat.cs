using System.Buffers.Binary;

namespace Kiln.Contracts.Snapshot;

/// <summary>The snapshot file layout (version 1), little-endian:
/// <code>
/// file header (16 bytes): "KILNSNAP" | u32 version | u32 CRC-32C of bytes 0..11
/// sections, back to back, each a <see cref="SnapshotSectionHeader"/> then its payload:
///   Info (JSON), Config (JSON), MachineState (binary), Ram x N, End (empty, last)
/// </code>
/// A Ram section's payload starts at the next 4 KiB boundary after its header (zero padding between), so the
/// payload can be mapped MAP_PRIVATE straight into the guest; its all-zero pages are left as holes (the file is
/// sparse). Every other payload follows its header directly.
///
/// Checking: the header, every section header and every small payload are checked when the file is opened, so a
/// bad magic, another version, a truncated file or a flipped bit in the state is refused before anything runs.
/// RAM payload CRCs are NOT checked on open: reading the RAM would defeat the lazy restore (the guest resumes
/// before its memory is read). They are checked by <see cref="SnapshotFile.VerifyRam"/> (<c>--verify</c> on
/// restore, or <c>kiln snapshot-verify FILE</c>); the file's length is always checked against every RAM
/// section, so a truncated RAM payload is refused on open too.</summary>
public static class SnapshotFormat
{
    public const int Version = 1;
    public const int FileHeaderSize = 16;
    public const long PageSize = 4096;

    /// <summary>Upper bound for non-RAM payloads (JSON, machine state): a corrupt length cannot make us allocate more.</summary>
    public const long MaxSmallSectionBytes = 64L << 20;

    public static ReadOnlySpan<byte> Magic => "KILNSNAP"u8;

    public static void WriteFileHeader(Span<byte> destination)
    {
        Magic.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], Crc32C.Compute(destination[..12]));
    }

    public static void CheckFileHeader(ReadOnlySpan<byte> header)
    {
        int compared = Math.Min(header.Length, Magic.Length);
        if (header.Length == 0 || !header[..compared].SequenceEqual(Magic[..compared]))
            throw new SnapshotException("not a Kiln snapshot (bad magic)");
        if (header.Length < FileHeaderSize)
            throw new SnapshotException("snapshot truncated: the file header is cut short");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != Crc32C.Compute(header[..12]))
            throw new SnapshotException("snapshot corrupt: the file header fails its CRC");
        if (version != Version)
            throw new SnapshotException($"snapshot format version {version} is not supported (this Kiln reads version {Version})");
    }

    /// <summary>Where a section's payload starts, given where its header starts.</summary>
    public static long PayloadOffset(SnapshotSectionType type, long headerOffset)
    {
        long end = headerOffset + SnapshotSectionHeader.Size;
        return type == SnapshotSectionType.Ram ? AlignUp(end) : end;
    }

    public static long AlignUp(long value) => (value + PageSize - 1) & ~(PageSize - 1);
}
