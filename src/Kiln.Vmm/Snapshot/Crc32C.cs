using System.Numerics;
using System.Runtime.InteropServices;

namespace Kiln.Vmm.Snapshot;

/// <summary>CRC-32C (Castagnoli), the checksum of every snapshot section. <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// uses the CPU's SSE4.2 crc32 instruction where there is one, so checking a whole RAM region runs at
/// several GB/s.</summary>
public static class Crc32C
{
    /// <summary>The checksum of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Start, data));

    /// <summary>The running value before any data; feed it to <see cref="Append"/>, then <see cref="Finish"/>.</summary>
    public const uint Start = 0xFFFF_FFFF;

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
}
