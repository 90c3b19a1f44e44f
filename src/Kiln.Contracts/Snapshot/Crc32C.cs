using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Contracts.Snapshot;

/// <summary>CRC-32C (Castagnoli), the checksum of every snapshot section. <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// uses the CPU's SSE4.2 crc32 instruction where there is one, so checking a whole RAM region runs at
/// several GB/s.</summary>
public static class Crc32C
{
    /// <summary>The checksum of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Start, data));

    /// <summary>The running value before any data; feed it to <see cref="Append"/>, then <see cref="Finish"/>.</summary>
    public const uint Start = 0xFFFF_FFFF;

    // Fully optimized from the first call: a snapshot is often the first time this runs, and unoptimized (tier-0)
    // code would check hundreds of MiB several times slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong word in words)
            crc = BitOperations.Crc32C(crc, word);
        foreach (byte b in data[(words.Length * sizeof(ulong))..])
            crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    public static uint Finish(uint crc) => ~crc;

    // The reflected polynomial; bit 31 stands for x^0.
    private const uint Polynomial = 0x82F6_3B78;
    private static readonly uint[] PowersOfTwo = BuildPowers();

    /// <summary>The running value after <paramref name="count"/> zero bytes, in O(log count) time: appending zeros
    /// multiplies the CRC register by x^(8 count) modulo the polynomial, so a snapshot's holes cost no reading.</summary>
    public static uint AppendZeros(uint crc, ulong count)
    {
        uint power = 1u << 31; // x^0
        for (int k = 3; count != 0; count >>= 1, k++)
            if ((count & 1) != 0)
                power = MultiplyModP(PowersOfTwo[k], power);
        return MultiplyModP(power, crc);
    }

    /// <summary>a(x) b(x) mod P(x), both reflected.</summary>
    private static uint MultiplyModP(uint a, uint b)
    {
        uint product = 0;
        for (uint m = 1u << 31; m != 0; m >>= 1)
        {
            if ((a & m) != 0)
                product ^= b;
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
        return product;
    }

    /// <summary>x^(2^k) mod P for k = 0..66: enough for any 64-bit byte count (8 count = 2^(k) with k up to 66).</summary>
    private static uint[] BuildPowers()
    {
        var table = new uint[67];
        table[0] = 1u << 30; // x^1
        for (int k = 1; k < table.Length; k++)
            table[k] = MultiplyModP(table[k - 1], table[k - 1]);
        return table;
    }
}
