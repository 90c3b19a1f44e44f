namespace Kiln.Storage.Qcow2;

public enum ClusterKind { Unallocated, Zero, Normal, Compressed }

/// <summary>A decoded L2 table entry. <see cref="HostOffset"/> is the data cluster (normal, or a preallocated zero
/// cluster) or the start of the compressed bytes; <see cref="CompressedLength"/> bounds the compressed stream.</summary>
public readonly record struct L2Entry(ClusterKind Kind, ulong HostOffset, ulong CompressedLength, bool Copied)
{
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong CompressedFlag = 1UL << 62;
    public const ulong ZeroFlag = 1;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00;
    private const ulong StandardReserved = 0x3F00_0000_0000_01FE;

    public static L2Entry Decode(ulong raw, int clusterBits, int version, string path)
    {
        bool copied = (raw & CopiedFlag) != 0;
        if ((raw & CompressedFlag) != 0)
        {
            int x = 62 - (clusterBits - 8);
            ulong offset = raw & ((1UL << x) - 1);
            ulong sectors = (raw & ~(CopiedFlag | CompressedFlag)) >> x;
            ulong length = (sectors + 1) * 512 - (offset & 511);
            if (offset == 0)
                throw new ImageFormatException($"{path}: compressed cluster at offset 0");
            return new L2Entry(ClusterKind.Compressed, offset, length, copied);
        }
        if ((raw & StandardReserved) != 0)
            throw new ImageFormatException($"{path}: L2 entry 0x{raw:x16} has reserved bits set");
        ulong host = raw & OffsetMask;
        if ((raw & ZeroFlag) != 0)
        {
            if (version < 3)
                throw new ImageFormatException($"{path}: zero cluster flag in a version 2 image");
            return new L2Entry(ClusterKind.Zero, host, 0, copied);
        }
        return host == 0 ? new L2Entry(ClusterKind.Unallocated, 0, 0, false) : new L2Entry(ClusterKind.Normal, host, 0, copied);
    }

    /// <summary>Host clusters the compressed bytes touch (each holds one reference per compressed cluster in it).</summary>
    public IEnumerable<ulong> CompressedClusters(int clusterBits)
    {
        ulong first = HostOffset >> clusterBits;
        ulong last = (HostOffset + CompressedLength - 1) >> clusterBits;
        for (ulong c = first; c <= last; c++)
            yield return c;
    }
}
