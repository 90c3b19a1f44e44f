using System.Buffers.Binary;
using System.Text;

namespace Kiln.Storage.Qcow2;

/// <summary>Decodes the big-endian header, its extensions and the backing file name once, checking every field
/// against the format's limits and the file's length. Anything out of range is an <see cref="ImageFormatException"/>
/// naming the field.</summary>
public static class Qcow2HeaderParser
{
    /// <summary>True if the bytes start with the qcow2 magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> start) =>
        start.Length >= 4 && BinaryPrimitives.ReadUInt32BigEndian(start) == Qcow2Header.Magic;

    /// <summary>Parses the header of the image in <paramref name="file"/>.</summary>
    internal static Qcow2Header Read(ImageFile file)
    {
        if (file.Length < Qcow2Header.V2HeaderLength)
            throw Bad(file.Path, "file is too short for a qcow2 header");
        var fixedPart = new byte[Qcow2Header.V2HeaderLength];
        file.ReadExact(0, fixedPart, "qcow2 header");
        int clusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(20));
        if (clusterBits is < 9 or > 21)
            throw Bad(file.Path, $"cluster_bits {clusterBits} is outside 9..21");
        var cluster0 = new byte[Math.Min(1UL << clusterBits, file.Length)];
        file.ReadExact(0, cluster0, "qcow2 header");
        return Parse(cluster0, file.Length, file.Path, (offset, length) =>
        {
            var name = new byte[length];
            file.ReadExact(offset, name, "backing file name");
            return name;
        });
    }

    /// <summary>Parses a header from the image's first cluster (or all of a shorter file).</summary>
    public static Qcow2Header Parse(ReadOnlySpan<byte> cluster0, ulong fileLength, string path,
        Func<ulong, int, byte[]>? readOutsideCluster0 = null)
    {
        if (cluster0.Length < Qcow2Header.V2HeaderLength)
            throw Bad(path, "file is too short for a qcow2 header");
        if (!HasMagic(cluster0))
            throw Bad(path, "not a qcow2 image (bad magic)");
        uint version = U32(cluster0, 4);
        if (version is not (2 or 3))
            throw Bad(path, $"qcow2 version {version} is not supported (2 or 3)");
        int clusterBits = (int)U32(cluster0, 20);
        if (clusterBits is < 9 or > 21)
            throw Bad(path, $"cluster_bits {clusterBits} is outside 9..21");
        ulong clusterSize = 1UL << clusterBits;
        ulong size = U64(cluster0, 24);
        uint crypt = U32(cluster0, 32);
        if (crypt != 0)
            throw Bad(path, $"encrypted images are not supported (crypt_method {crypt})");
        uint l1Size = U32(cluster0, 36);
        ulong l1Offset = U64(cluster0, 40);
        ulong refTableOffset = U64(cluster0, 48);
        uint refTableClusters = U32(cluster0, 56);
        uint snapshots = U32(cluster0, 60);
        ulong snapshotsOffset = U64(cluster0, 64);

        ulong incompatible = 0, compatible = 0, autoclear = 0;
        int refcountOrder = 4;
        uint headerLength = Qcow2Header.V2HeaderLength;
        byte compressionType = 0;
        if (version == 3)
        {
            if (cluster0.Length < Qcow2Header.V3HeaderLength)
                throw Bad(path, "file is too short for a version 3 header");
            incompatible = U64(cluster0, 72);
            compatible = U64(cluster0, 80);
            autoclear = U64(cluster0, 88);
            uint order = U32(cluster0, 96);
            if (order > 6)
                throw Bad(path, $"refcount_order {order} is outside 0..6");
            refcountOrder = (int)order;
            headerLength = U32(cluster0, 100);
            if (headerLength < Qcow2Header.V3HeaderLength || headerLength % 8 != 0 || headerLength > (ulong)cluster0.Length)
                throw Bad(path, $"header_length {headerLength} is invalid");
            if (headerLength > 104)
                compressionType = cluster0[104];
        }

        // Extensions: needed before the feature check, for the feature name table.
        string? backingFormat = null;
        var featureNames = new Dictionary<(int, int), string>();
        int pos = (int)headerLength;
        while (true)
        {
            if (pos + 8 > cluster0.Length)
                throw Bad(path, "header extensions run past the first cluster");
            uint type = U32(cluster0, pos);
            uint length = U32(cluster0, pos + 4);
            pos += 8;
            if (type == Qcow2Extensions.End)
                break;
            if (length > (uint)(cluster0.Length - pos))
                throw Bad(path, $"header extension 0x{type:x8} (length {length}) runs past the first cluster");
            var data = cluster0.Slice(pos, (int)length);
            switch (type)
            {
                case Qcow2Extensions.BackingFormat:
                    backingFormat = Ascii(data, path, "backing format");
                    break;
                case Qcow2Extensions.FeatureNameTable:
                    for (int e = 0; e + 48 <= data.Length; e += 48)
                    {
                        var name = data.Slice(e + 2, 46);
                        int nul = name.IndexOf((byte)0);
                        featureNames[(data[e], data[e + 1])] = Encoding.ASCII.GetString(nul < 0 ? name : name[..nul]);
                    }
                    break;
                case Qcow2Extensions.FullDiskEncryption:
                    throw Bad(path, "encrypted images are not supported");
                case Qcow2Extensions.ExternalDataFile:
                    throw Bad(path, "external data files are not supported");
            }
            pos += (int)((length + 7) & ~7u);
        }

        ulong unknown = incompatible & ~Qcow2Features.KnownIncompatible;
        if (unknown != 0)
        {
            var names = Enumerable.Range(0, 64).Where(b => (unknown & (1UL << b)) != 0)
                .Select(b => featureNames.TryGetValue((0, b), out var n) ? $"'{n}' (bit {b})" : $"bit {b}");
            throw Bad(path, $"unknown incompatible features: {string.Join(", ", names)}");
        }
        if ((incompatible & Qcow2Features.ExternalDataFile) != 0)
            throw Bad(path, "external data files are not supported");
        if ((incompatible & Qcow2Features.ExtendedL2) != 0)
            throw Bad(path, "extended L2 entries (subclusters) are not supported");
        if (compressionType != 0)
            throw Bad(path, $"compression type {compressionType} is not supported (only deflate)");

        // Tables: aligned, inside the file, not overlapping the header cluster or each other.
        if ((ulong)l1Size * 8 > Qcow2Header.MaxL1Bytes)
            throw Bad(path, $"L1 table of {l1Size} entries is too large");
        ulong needed = Qcow2Header.L1EntriesFor(size, clusterBits);
        if (needed > l1Size)
            throw Bad(path, $"virtual size {size} needs {needed} L1 entries but the table has {l1Size}");
        CheckTable(path, "L1 table", l1Offset, (ulong)l1Size * 8, clusterSize, fileLength, l1Size > 0);
        ulong refTableBytes = (ulong)refTableClusters << clusterBits;
        if (refTableClusters == 0 || refTableBytes > Qcow2Header.MaxRefcountTableBytes)
            throw Bad(path, $"refcount table of {refTableClusters} clusters is invalid");
        CheckTable(path, "refcount table", refTableOffset, refTableBytes, clusterSize, fileLength, true);
        if (l1Size > 0 && Overlap(l1Offset, (ulong)l1Size * 8, refTableOffset, refTableBytes))
            throw Bad(path, "the L1 table overlaps the refcount table");
        if (snapshots > 0 && (snapshotsOffset % clusterSize != 0 || snapshotsOffset == 0 || snapshotsOffset >= fileLength))
            throw Bad(path, $"snapshot table offset {snapshotsOffset} is invalid");

        ulong backingOffset = U64(cluster0, 8);
        uint backingSize = U32(cluster0, 16);
        string? backing = null;
        if (backingOffset != 0)
        {
            if (backingSize == 0 || backingSize > 1023)
                throw Bad(path, $"backing file name length {backingSize} is outside 1..1023");
            if (backingOffset > fileLength || backingSize > fileLength - backingOffset)
                throw Bad(path, "backing file name lies past the end of the file");
            byte[] raw = backingOffset + backingSize <= (ulong)cluster0.Length
                ? cluster0.Slice((int)backingOffset, (int)backingSize).ToArray()
                : readOutsideCluster0?.Invoke(backingOffset, (int)backingSize) ?? throw Bad(path, "backing file name lies outside the header cluster");
            backing = Encoding.UTF8.GetString(raw);
            if (backing.Contains('\0'))
                throw Bad(path, "backing file name contains a NUL byte");
        }

        return new Qcow2Header
        {
            Version = (int)version, ClusterBits = clusterBits, Size = size, L1TableOffset = l1Offset, L1Size = l1Size,
            RefcountTableOffset = refTableOffset, RefcountTableClusters = refTableClusters, SnapshotCount = snapshots,
            SnapshotsOffset = snapshotsOffset, IncompatibleFeatures = incompatible, CompatibleFeatures = compatible,
            AutoclearFeatures = autoclear, RefcountOrder = refcountOrder, HeaderLength = headerLength,
            CompressionType = compressionType, BackingFileOffset = backingOffset, BackingFileSize = backingSize,
            BackingFile = backing, BackingFormat = backingFormat, FeatureNames = featureNames,
        };
    }

    private static void CheckTable(string path, string what, ulong offset, ulong bytes, ulong clusterSize, ulong fileLength, bool present)
    {
        if (!present)
            return;
        if (offset == 0 || offset % clusterSize != 0)
            throw Bad(path, $"{what} offset {offset} is not a non-zero multiple of the cluster size");
        if (offset > fileLength || bytes > fileLength - offset)
            throw Bad(path, $"{what} at {offset} (+{bytes}) lies past the end of the file ({fileLength} bytes)");
    }

    private static bool Overlap(ulong a, ulong aLength, ulong b, ulong bLength) => a < b + bLength && b < a + aLength;

    private static string Ascii(ReadOnlySpan<byte> data, string path, string what)
    {
        if (data.Length > 64 || data.ContainsAnyExceptInRange((byte)0x21, (byte)0x7e))
            throw Bad(path, $"{what} extension is not a short printable name");
        return Encoding.ASCII.GetString(data);
    }

    private static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32BigEndian(b[offset..]);
    private static ulong U64(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt64BigEndian(b[offset..]);

    private static ImageFormatException Bad(string path, string message) => new($"{path}: {message}");
}
