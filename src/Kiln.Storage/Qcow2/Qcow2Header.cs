namespace Kiln.Storage.Qcow2;

/// <summary>A qcow2 header after validation: every field here has been range-checked against the format and the
/// file, so later steps (mapping, refcounts, backing) trust it. Produced only by <see cref="Qcow2HeaderParser"/>.</summary>
public sealed record Qcow2Header
{
    public const uint Magic = 0x514649FB; // "QFI\xfb"
    public const int V2HeaderLength = 72;
    public const int V3HeaderLength = 104;
    public const int MaxL1Bytes = 32 << 20;
    public const int MaxRefcountTableBytes = 8 << 20;

    public required int Version { get; init; }
    public required int ClusterBits { get; init; }
    public required ulong Size { get; init; }
    public required ulong L1TableOffset { get; init; }
    public required uint L1Size { get; init; }
    public required ulong RefcountTableOffset { get; init; }
    public required uint RefcountTableClusters { get; init; }
    public required uint SnapshotCount { get; init; }
    public required ulong SnapshotsOffset { get; init; }
    public required ulong IncompatibleFeatures { get; init; }
    public required ulong CompatibleFeatures { get; init; }
    public required ulong AutoclearFeatures { get; init; }
    public required int RefcountOrder { get; init; }
    public required uint HeaderLength { get; init; }
    public required byte CompressionType { get; init; }
    public required ulong BackingFileOffset { get; init; }
    public required uint BackingFileSize { get; init; }
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
    public IReadOnlyDictionary<(int Type, int Bit), string> FeatureNames { get; init; } = new Dictionary<(int, int), string>();

    public ulong ClusterSize => 1UL << ClusterBits;
    public int L2Bits => ClusterBits - 3;
    public ulong L2Entries => ClusterSize / 8;
    public int RefcountBits => 1 << RefcountOrder;
    /// <summary>Refcount entries per refcount block.</summary>
    public ulong RefcountBlockEntries => ClusterSize * 8 / (ulong)RefcountBits;
    public ulong L1Bytes => (ulong)L1Size * 8;
    public ulong RefcountTableBytes => (ulong)RefcountTableClusters << ClusterBits;
    public bool IsDirty => (IncompatibleFeatures & Qcow2Features.Dirty) != 0;
    public bool IsCorrupt => (IncompatibleFeatures & Qcow2Features.Corrupt) != 0;
    public bool LazyRefcounts => (CompatibleFeatures & Qcow2Features.LazyRefcounts) != 0;

    /// <summary>Virtual bytes one L1 entry (one L2 table) covers.</summary>
    public ulong L2Coverage => L2Entries << ClusterBits;

    /// <summary>L1 entries needed to map <paramref name="size"/> bytes.</summary>
    public static ulong L1EntriesFor(ulong size, int clusterBits)
    {
        ulong coverage = 1UL << (2 * clusterBits - 3);
        return size / coverage + (size % coverage != 0 ? 1UL : 0);
    }
}

/// <summary>Feature bits of the v3 header.</summary>
public static class Qcow2Features
{
    public const ulong Dirty = 1UL << 0;
    public const ulong Corrupt = 1UL << 1;
    public const ulong ExternalDataFile = 1UL << 2;
    public const ulong CompressionType = 1UL << 3;
    public const ulong ExtendedL2 = 1UL << 4;
    public const ulong KnownIncompatible = Dirty | Corrupt | ExternalDataFile | CompressionType | ExtendedL2;
    public const ulong LazyRefcounts = 1UL << 0;

    public static string IncompatibleName(int bit) => bit switch
    {
        0 => "dirty bit",
        1 => "corrupt bit",
        2 => "external data file",
        3 => "compression type",
        4 => "extended L2 entries",
        _ => $"bit {bit}",
    };
}

/// <summary>Header extension types.</summary>
public static class Qcow2Extensions
{
    public const uint End = 0;
    public const uint BackingFormat = 0xE2792ACA;
    public const uint FeatureNameTable = 0x6803F857;
    public const uint Bitmaps = 0x23852875;
    public const uint FullDiskEncryption = 0x0537BE77;
    public const uint ExternalDataFile = 0x44415441;
}
