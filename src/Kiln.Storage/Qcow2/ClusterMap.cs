using System.Buffers.Binary;

namespace Kiln.Storage.Qcow2;

/// <summary>The two-level map from guest clusters to host clusters: the L1 table (kept in memory) and L2 tables
/// (cached). New L2 tables are written and synced before the L1 entry that points to them.</summary>
internal sealed class ClusterMap
{
    private const ulong L1Reserved = 0x7F00_0000_0000_01FF;
    private readonly ImageFile _file;
    private readonly MetadataGuard _guard;
    private readonly RefcountTable _refcounts;
    private readonly ClusterCache _l2 = new(64);
    private readonly int _clusterBits;
    private readonly int _version;
    private readonly Func<ulong, byte[]> _loadL2;
    private ulong[] _l1;
    private ulong _lastL2Offset;
    private byte[]? _lastL2;

    public ClusterMap(ImageFile file, Qcow2Header header, MetadataGuard guard, RefcountTable refcounts)
    {
        _file = file;
        _guard = guard;
        _refcounts = refcounts;
        _clusterBits = header.ClusterBits;
        _version = header.Version;
        _loadL2 = ReadL2;
        L1Offset = header.L1TableOffset;
        var raw = new byte[header.L1Bytes];
        file.ReadExact(L1Offset, raw, "L1 table");
        _l1 = new ulong[header.L1Size];
        for (int i = 0; i < _l1.Length; i++)
            _l1[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
    }

    public ulong L1Offset { get; private set; }
    public IReadOnlyList<ulong> L1 => _l1;
    private ulong ClusterSize => 1UL << _clusterBits;
    private int L2Bits => _clusterBits - 3;

    public L2Entry Lookup(ulong guestCluster)
    {
        ulong l2 = L2Offset(guestCluster >> L2Bits);
        if (l2 == 0)
            return default;
        ulong raw = BinaryPrimitives.ReadUInt64BigEndian(LoadL2(l2).AsSpan((int)(guestCluster & ((1UL << L2Bits) - 1)) * 8));
        return L2Entry.Decode(raw, _clusterBits, _version, _file.Path);
    }

    /// <summary>Points a guest cluster at <paramref name="raw"/>. The caller has already made the target durable.</summary>
    public void Set(ulong guestCluster, ulong raw)
    {
        ulong l1Index = guestCluster >> L2Bits;
        int l2Index = (int)(guestCluster & ((1UL << L2Bits) - 1));
        if (l1Index >= (ulong)_l1.Length)
            throw new ImageFormatException($"{_file.Path}: guest cluster {guestCluster} is beyond the L1 table");
        ulong l2 = L2Offset(l1Index);
        if (l2 == 0)
        {
            var table = new byte[ClusterSize];
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(l2Index * 8), raw);
            ulong offset = _refcounts.Allocate(1);
            _file.Write(offset, table);
            _refcounts.Sync();
            _l2.Put(offset, table);
            (_lastL2Offset, _lastL2) = (offset, table);
            WriteL1(l1Index, offset | L2Entry.CopiedFlag);
            return;
        }
        if ((_l1[l1Index] & L2Entry.CopiedFlag) == 0)
            throw new ImageFormatException($"{_file.Path}: L2 table {l2} is shared (internal snapshot); writing it is not supported");
        var cached = LoadL2(l2);
        BinaryPrimitives.WriteUInt64BigEndian(cached.AsSpan(l2Index * 8), raw);
        _file.Write(l2 + (ulong)l2Index * 8, cached.AsSpan(l2Index * 8, 8));
    }

    /// <summary>Sets many entries (sorted by guest cluster), one write per L2 table: the span from the first to the
    /// last changed entry, whose other entries are rewritten with the values the file already holds (the cache is
    /// write-through). A new L2 table is written whole and synced before its L1 entry.</summary>
    public void SetMany(IReadOnlyList<(ulong GuestCluster, ulong Raw)> entries)
    {
        int i = 0;
        while (i < entries.Count)
        {
            ulong l1Index = entries[i].GuestCluster >> L2Bits;
            int end = i;
            while (end < entries.Count && entries[end].GuestCluster >> L2Bits == l1Index)
                end++;
            if (end - i == 1 || L2Offset(l1Index) == 0)
            {
                // One entry, or a new table: Set writes the first (allocating the table), the rest land in the cache.
                Set(entries[i].GuestCluster, entries[i].Raw);
                i++;
                if (i == end)
                    continue;
            }
            if ((_l1[l1Index] & L2Entry.CopiedFlag) == 0)
                throw new ImageFormatException($"{_file.Path}: L2 table {L2Offset(l1Index)} is shared (internal snapshot); writing it is not supported");
            ulong l2 = L2Offset(l1Index);
            var table = LoadL2(l2);
            int first = L2Index(entries[i].GuestCluster), last = L2Index(entries[end - 1].GuestCluster);
            for (int k = i; k < end; k++)
                BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(L2Index(entries[k].GuestCluster) * 8), entries[k].Raw);
            _file.Write(l2 + (ulong)first * 8, table.AsSpan(first * 8, (last - first + 1) * 8));
            i = end;
        }
    }

    private int L2Index(ulong guestCluster) => (int)(guestCluster & ((1UL << L2Bits) - 1));

    /// <summary>Replaces the L1 table with a longer one (resize): the new table is written and synced, then the header
    /// switches to it, then the old table's clusters are freed.</summary>
    public void Grow(uint newSize)
    {
        if (newSize <= _l1.Length)
            return;
        var l1 = new ulong[newSize];
        _l1.CopyTo(l1, 0);
        var raw = new byte[((ulong)newSize * 8 + ClusterSize - 1) & ~(ClusterSize - 1)];
        for (int i = 0; i < l1.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), l1[i]);
        ulong oldOffset = L1Offset;
        ulong oldClusters = ((ulong)_l1.Length * 8 + ClusterSize - 1) >> _clusterBits;
        int clusters = (int)((ulong)raw.Length >> _clusterBits);
        ulong offset = _refcounts.Allocate(clusters);
        _file.Write(offset, raw);
        _refcounts.Sync();
        var header = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(header, newSize);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(4), offset);
        _file.Write(36, header);
        _refcounts.Sync();
        _l1 = l1;
        L1Offset = offset;
        _guard.L1Offset = offset;
        _guard.L1Bytes = (ulong)newSize * 8;
        for (ulong c = 0; c < oldClusters && oldOffset != 0; c++)
            _refcounts.Decrement((oldOffset >> _clusterBits) + c);
    }

    private void WriteL1(ulong index, ulong value)
    {
        var raw = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(raw, value);
        _file.Write(L1Offset + index * 8, raw);
        _l1[index] = value;
    }

    private ulong L2Offset(ulong l1Index)
    {
        if (l1Index >= (ulong)_l1.Length)
            return 0;
        ulong entry = _l1[l1Index];
        if ((entry & L1Reserved) != 0)
            throw new ImageFormatException($"{_file.Path}: L1 entry {l1Index} has reserved bits set");
        return entry & L2Entry.OffsetMask;
    }

    /// <summary>The table at <paramref name="offset"/>; the last one used is kept aside, since sequential and
    /// local accesses hit the same table again and again.</summary>
    private byte[] LoadL2(ulong offset)
    {
        if (offset == _lastL2Offset && _lastL2 is { } last)
            return last;
        var table = _l2.Get(offset, _loadL2);
        _lastL2Offset = offset;
        _lastL2 = table;
        return table;
    }

    private byte[] ReadL2(ulong offset)
    {
        _guard.Check(offset, "L2 table");
        var table = new byte[ClusterSize];
        _file.ReadExact(offset, table, "L2 table");
        return table;
    }
}
