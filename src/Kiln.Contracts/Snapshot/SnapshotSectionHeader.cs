using System.Buffers.Binary;

namespace Kiln.Contracts.Snapshot;

/// <summary>The 32-byte header in front of every section, little-endian:
/// <code>
///  0 u32 type       (SnapshotSectionType)
///  4 u32 flags      (0; a reader refuses unknown flags)
///  8 u64 length     payload bytes
/// 16 u64 param      Ram: guest-physical start; otherwise 0
/// 24 u32 crc        CRC-32C of the payload
/// 28 u32 headerCrc  CRC-32C of bytes 0..27, so a corrupt length is caught before it is trusted
/// </code></summary>
public readonly record struct SnapshotSectionHeader(SnapshotSectionType Type, ulong Length, ulong Param, uint Crc)
{
    public const int Size = 32;

    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)Type);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Length);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], Param);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[24..], Crc);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[28..], Crc32C.Compute(destination[..28]));
    }

    /// <summary>Decodes and checks a header read at <paramref name="offset"/> (named in errors).</summary>
    public static SnapshotSectionHeader Read(ReadOnlySpan<byte> source, long offset)
    {
        if (source.Length < Size)
            throw new SnapshotException($"snapshot truncated: section header at offset {offset} is cut short");
        source = source[..Size];
        if (BinaryPrimitives.ReadUInt32LittleEndian(source[28..]) != Crc32C.Compute(source[..28]))
            throw new SnapshotException($"snapshot corrupt: section header at offset {offset} fails its CRC");
        var type = (SnapshotSectionType)BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (!Enum.IsDefined(type))
            throw new SnapshotException($"snapshot has an unknown section type {(uint)type} at offset {offset}");
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(source[4..]);
        if (flags != 0)
            throw new SnapshotException($"snapshot section at offset {offset} has unknown flags 0x{flags:x}");
        return new SnapshotSectionHeader(type, BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[16..]), BinaryPrimitives.ReadUInt32LittleEndian(source[24..]));
    }
}
