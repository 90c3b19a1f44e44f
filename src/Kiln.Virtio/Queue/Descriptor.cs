using System.Buffers.Binary;
using Kiln.Memory;

namespace Kiln.Virtio.Queue;

/// <summary>A raw 16-byte split-ring descriptor as the driver wrote it (nothing validated yet).</summary>
internal readonly record struct Descriptor(ulong Address, uint Length, ushort Flags, ushort Next)
{
    public const int Size = 16;
    public const ushort FlagNext = 1;
    public const ushort FlagWrite = 2;
    public const ushort FlagIndirect = 4;

    public bool HasNext => (Flags & FlagNext) != 0;
    public bool IsWritable => (Flags & FlagWrite) != 0;
    public bool IsIndirect => (Flags & FlagIndirect) != 0;

    /// <summary>Reads the descriptor at <paramref name="address"/>; the caller has checked that the table is in RAM.</summary>
    public static Descriptor ReadFrom(GuestMemory memory, GuestAddress address)
    {
        Span<byte> raw = stackalloc byte[Size];
        memory.Read(address, raw);
        return new Descriptor(BinaryPrimitives.ReadUInt64LittleEndian(raw),
            BinaryPrimitives.ReadUInt32LittleEndian(raw[8..]),
            BinaryPrimitives.ReadUInt16LittleEndian(raw[12..]),
            BinaryPrimitives.ReadUInt16LittleEndian(raw[14..]));
    }
}
