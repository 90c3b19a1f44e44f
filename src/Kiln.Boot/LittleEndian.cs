using System.Buffers.Binary;

namespace Kiln.Boot;

/// <summary>Short names for the little-endian field accesses every boot structure is made of.</summary>
internal static class LittleEndian
{
    public static ushort U16(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(b[offset..]);
    public static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);
    public static ulong U64(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(b[offset..]);

    public static void Put16(Span<byte> b, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(b[offset..], value);
    public static void Put32(Span<byte> b, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], value);
    public static void Put64(Span<byte> b, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(b[offset..], value);

    /// <summary>The byte that makes the sum of all bytes in <paramref name="b"/> zero (MP table checksums),
    /// given that the checksum byte itself is still zero.</summary>
    public static byte ChecksumFor(ReadOnlySpan<byte> b)
    {
        byte sum = 0;
        foreach (byte x in b)
            sum += x;
        return (byte)-sum;
    }
}
