using System.Buffers.Binary;

namespace Kiln.Storage.Qcow2;

/// <summary>Reads and writes entry <c>i</c> of a refcount block of 2^order-bit entries (order 0..6). Entries
/// narrower than a byte are packed from the least significant bit; wider ones are big-endian.</summary>
internal static class RefcountEntries
{
    public static ulong Max(int order) => order == 6 ? ulong.MaxValue : (1UL << (1 << order)) - 1;

    public static ulong Get(ReadOnlySpan<byte> block, ulong i, int order) => order switch
    {
        < 3 => (ulong)(block[(int)(i >> (3 - order))] >> (int)((i & ((8UL >> order) - 1)) << order)) & Max(order),
        3 => block[(int)i],
        4 => BinaryPrimitives.ReadUInt16BigEndian(block[(int)(i * 2)..]),
        5 => BinaryPrimitives.ReadUInt32BigEndian(block[(int)(i * 4)..]),
        _ => BinaryPrimitives.ReadUInt64BigEndian(block[(int)(i * 8)..]),
    };

    /// <summary>Sets the entry and returns the byte range of the block that changed.</summary>
    public static (int Offset, int Length) Set(Span<byte> block, ulong i, int order, ulong value)
    {
        switch (order)
        {
            case < 3:
                int index = (int)(i >> (3 - order));
                int shift = (int)((i & ((8UL >> order) - 1)) << order);
                int mask = (int)Max(order) << shift;
                block[index] = (byte)((block[index] & ~mask) | ((int)value << shift & mask));
                return (index, 1);
            case 3:
                block[(int)i] = (byte)value;
                return ((int)i, 1);
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(block[(int)(i * 2)..], (ushort)value);
                return ((int)(i * 2), 2);
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(block[(int)(i * 4)..], (uint)value);
                return ((int)(i * 4), 4);
            default:
                BinaryPrimitives.WriteUInt64BigEndian(block[(int)(i * 8)..], value);
                return ((int)(i * 8), 8);
        }
    }
}
