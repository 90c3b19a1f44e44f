using System.Buffers.Binary;
using System.Text;
using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>`kiln img create`: a sparse raw file, or an empty qcow2 v3 image (16-bit refcounts) laid out as header,
/// refcount table, refcount blocks, L1 table — every one of those clusters counted once.</summary>
public static class ImageCreate
{
    public const int DefaultClusterSize = 64 << 10;

    public static void Raw(string path, ulong size)
    {
        using var stream = CreateFile(path);
        stream.SetLength((long)size);
    }

    public static void Qcow2(string path, ulong size, int clusterSize = DefaultClusterSize, string? backingFile = null,
        string? backingFormat = null)
    {
        if (clusterSize < 512 || clusterSize > (2 << 20) || (clusterSize & (clusterSize - 1)) != 0)
            throw new DiskException($"{path}: cluster size {clusterSize} must be a power of two from 512 to 2M");
        int bits = System.Numerics.BitOperations.Log2((uint)clusterSize);
        ulong cs = (ulong)clusterSize;
        ulong l1Entries = Qcow2Header.L1EntriesFor(size, bits);
        if (l1Entries * 8 > Qcow2Header.MaxL1Bytes)
            throw new DiskException($"{path}: virtual size {size} is too large for {clusterSize}-byte clusters");
        ulong l1Clusters = Math.Max(1, (l1Entries * 8 + cs - 1) / cs);
        ulong perBlock = cs * 8 / 16;
        ulong blocks = 1, tableClusters = 1;
        while (true) // header + table + blocks + L1 must be covered by the blocks, and the table must hold the blocks
        {
            ulong total = 1 + tableClusters + blocks + l1Clusters;
            ulong needBlocks = (total + perBlock - 1) / perBlock;
            ulong needTable = Math.Max(1, (needBlocks * 8 + cs - 1) / cs);
            if (needBlocks == blocks && needTable == tableClusters)
                break;
            blocks = needBlocks;
            tableClusters = needTable;
        }
        ulong tableOffset = cs;
        ulong blocksOffset = tableOffset + tableClusters * cs;
        ulong l1Offset = blocksOffset + blocks * cs;
        ulong end = l1Offset + l1Clusters * cs;
        ulong totalClusters = end / cs;

        var header = new byte[cs];
        BinaryPrimitives.WriteUInt32BigEndian(header, Qcow2Header.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), 3);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(20), (uint)bits);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(24), size);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(36), (uint)l1Entries);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(40), l1Offset);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(48), tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(56), (uint)tableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(96), 4);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(100), 112);
        int pos = 112;
        if (backingFormat is not null)
            pos = Extension(header, pos, Qcow2Extensions.BackingFormat, Encoding.ASCII.GetBytes(backingFormat));
        var features = FeatureTable();
        if (pos + 8 + features.Length + 16 + (backingFile?.Length ?? 0) <= header.Length) // optional: skipped for tiny clusters
            pos = Extension(header, pos, Qcow2Extensions.FeatureNameTable, features);
        pos += 8; // end-of-extensions marker (zeros)
        if (backingFile is not null)
        {
            var name = Encoding.UTF8.GetBytes(backingFile);
            if (name.Length is 0 or > 1023 || pos + name.Length > header.Length)
                throw new DiskException($"{path}: backing file name is too long");
            name.CopyTo(header.AsSpan(pos));
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), (ulong)pos);
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(16), (uint)name.Length);
        }

        var table = new byte[tableClusters * cs];
        for (ulong b = 0; b < blocks; b++)
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(b * 8)), blocksOffset + b * cs);
        var refcounts = new byte[blocks * cs];
        for (ulong c = 0; c < totalClusters; c++)
            BinaryPrimitives.WriteUInt16BigEndian(refcounts.AsSpan((int)(c * 2)), 1);

        if (backingFile is not null && BackingChain.Canonical(BackingChain.Resolve(path, backingFile)) == BackingChain.Canonical(path))
            throw new DiskException($"{path}: an image cannot be its own backing file");
        using var stream = CreateFile(path);
        stream.Write(header);
        stream.Write(table);
        stream.Write(refcounts);
        stream.SetLength((long)end); // the L1 table: zeros
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Creates or truncates the file, as qemu-img create does.</summary>
    private static FileStream CreateFile(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Create, FileAccess.Write);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.OpenFailed(path, e);
        }
    }

    private static int Extension(byte[] header, int pos, uint type, byte[] data)
    {
        if (pos + 8 + data.Length + 16 > header.Length)
            throw new DiskException("qcow2 header extensions do not fit in one cluster");
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(pos), type);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(pos + 4), (uint)data.Length);
        data.CopyTo(header.AsSpan(pos + 8));
        return pos + 8 + ((data.Length + 7) & ~7);
    }

    private static byte[] FeatureTable()
    {
        (byte Type, byte Bit, string Name)[] features =
        [
            (0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"), (0, 3, "compression type"),
            (0, 4, "extended L2 entries"), (1, 0, "lazy refcounts"), (2, 0, "bitmaps"), (2, 1, "raw external data"),
        ];
        var table = new byte[features.Length * 48];
        for (int i = 0; i < features.Length; i++)
        {
            table[i * 48] = features[i].Type;
            table[i * 48 + 1] = features[i].Bit;
            Encoding.ASCII.GetBytes(features[i].Name).CopyTo(table, i * 48 + 2);
        }
        return table;
    }
}
