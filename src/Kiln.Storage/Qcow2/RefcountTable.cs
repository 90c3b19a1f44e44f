using System.Buffers.Binary;

namespace Kiln.Storage.Qcow2;

/// <summary>The refcount table and its blocks: reads any refcount width, updates them, and allocates clusters at the
/// end of the file. Every update is ordered for crash safety: a new refcount block is written (and synced) before
/// the table entry that points to it, and a cluster's refcount is set before anything references the cluster — so a
/// crash leaves at worst leaked clusters, never a referenced cluster with refcount 0.</summary>
internal sealed class RefcountTable
{
    private const ulong OffsetMask = 0xFFFF_FFFF_FFFF_FE00;
    private readonly ImageFile _file;
    private readonly MetadataGuard _guard;
    private readonly ClusterCache _blocks = new(32);
    private readonly int _clusterBits;
    private readonly int _order;
    private readonly ulong _perBlock;
    private ulong[] _table;
    private ulong _tableOffset;
    private ulong _nextFree;

    public RefcountTable(ImageFile file, Qcow2Header header, MetadataGuard guard)
    {
        _file = file;
        _guard = guard;
        _clusterBits = header.ClusterBits;
        _order = header.RefcountOrder;
        _perBlock = header.RefcountBlockEntries;
        _tableOffset = header.RefcountTableOffset;
        var raw = new byte[header.RefcountTableBytes];
        file.ReadExact(_tableOffset, raw, "refcount table");
        _table = new ulong[raw.Length / 8];
        for (int i = 0; i < _table.Length; i++)
            _table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        _nextFree = ClustersIn(file.Length);
    }

    /// <summary>When false, skips the fsyncs that order metadata (for converting into a fresh image).</summary>
    public bool OrderedSync { get; set; } = true;

    public ulong ClusterSize => 1UL << _clusterBits;
    public ulong TableOffset => _tableOffset;
    public int TableClusters => (int)((ulong)_table.Length * 8 >> _clusterBits);
    public IReadOnlyList<ulong> Entries => _table;
    public ulong MaxRefcount => RefcountEntries.Max(_order);

    /// <summary>The file's write count when the table last started to grow (tests aim crash points there).</summary>
    public int? GrowthStartedAtWrite { get; private set; }

    public ulong Get(ulong cluster)
    {
        ulong ti = cluster / _perBlock;
        if (ti >= (ulong)_table.Length)
            return 0;
        ulong blockOffset = BlockOffset(ti);
        return blockOffset == 0 ? 0 : RefcountEntries.Get(LoadBlock(blockOffset), cluster % _perBlock, _order);
    }

    public void Set(ulong cluster, ulong value)
    {
        if (value > MaxRefcount)
            throw new ImageFormatException($"{_file.Path}: refcount of cluster {cluster} would overflow ({_order} order)");
        ulong ti = cluster / _perBlock;
        ulong blockOffset = EnsureBlock(ti);
        var block = LoadBlock(blockOffset);
        var (at, length) = RefcountEntries.Set(block, cluster % _perBlock, _order, value);
        _file.Write(blockOffset + (ulong)at, block.AsSpan(at, length));
    }

    public void Increment(ulong cluster) => Set(cluster, checked(Get(cluster) + 1));

    public void Decrement(ulong cluster)
    {
        ulong current = Get(cluster);
        if (current == 0)
            throw new ImageFormatException($"{_file.Path}: refcount of cluster {cluster} would drop below zero");
        Set(cluster, current - 1);
    }

    /// <summary>Whether the next one-cluster <see cref="Allocate"/> would return a cluster at or past the end of the
    /// file (so it reads as zeros until written). A refcount block it may need first comes before it.</summary>
    public bool NextAllocationIsPastEnd => _nextFree << _clusterBits >= _file.Length;

    /// <summary>Reserves <paramref name="count"/> contiguous free clusters at the end of the image and sets their
    /// refcounts to 1 (nothing references them yet: a crash now only leaks them). Returns the first one's offset.</summary>
    public ulong Allocate(int count)
    {
        ulong start = _nextFree;
        for (ulong c = start; c < start + (ulong)count; c++)
            if (Get(c) != 0) // a stale refcount past the end (a leak): skip over it
            {
                start = c + 1;
            }
        _nextFree = start + (ulong)count;
        for (ulong c = start; c < start + (ulong)count; c++)
            Set(c, 1);
        return start << _clusterBits;
    }

    /// <summary>The host offset of block <paramref name="ti"/>, allocating it when missing.</summary>
    private ulong EnsureBlock(ulong ti)
    {
        if (ti >= (ulong)_table.Length)
            GrowTable(ti);
        ulong existing = BlockOffset(ti);
        if (existing != 0)
            return existing;
        ulong cluster = _nextFree++;
        var block = new byte[ClusterSize];
        bool selfCovering = cluster / _perBlock == ti;
        if (selfCovering)
            RefcountEntries.Set(block, cluster % _perBlock, _order, 1);
        else
            Set(cluster, 1); // in another block (allocated first if needed): leaked until the table points here
        ulong offset = cluster << _clusterBits;
        _file.Write(offset, block);
        Sync();
        _blocks.Put(offset, block);
        WriteTableEntry(ti, offset);
        return offset;
    }

    /// <summary>Moves the refcount table to a larger one at the end of the file. The new table and the refcount
    /// blocks that cover it are written and synced before the header switches to it; the old table's clusters are
    /// freed last.</summary>
    private void GrowTable(ulong neededIndex)
    {
        GrowthStartedAtWrite ??= _file.WriteCount;
        ulong entriesPerCluster = ClusterSize / 8;
        ulong newEntries = Math.Max((ulong)_table.Length * 2, neededIndex + 1);
        ulong tableClusters = (newEntries + entriesPerCluster - 1) / entriesPerCluster;
        if (tableClusters << _clusterBits > Qcow2Header.MaxRefcountTableBytes)
            throw new ImageFormatException($"{_file.Path}: refcount table would exceed {Qcow2Header.MaxRefcountTableBytes} bytes");
        newEntries = tableClusters * entriesPerCluster;
        var table = new ulong[newEntries];
        _table.CopyTo(table, 0);
        ulong tableStart = _nextFree;
        ulong next = tableStart + tableClusters;
        // Blocks for the new clusters that have none: placed after the table, covering themselves and the table.
        var newBlocks = new Dictionary<ulong, (ulong Cluster, byte[] Data)>();
        for (ulong c = tableStart; c < next; c++)
        {
            ulong ti = c / _perBlock;
            if (ti < (ulong)_table.Length && _table[ti] != 0)
                continue;
            if (!newBlocks.ContainsKey(ti))
                newBlocks[ti] = (next++, new byte[ClusterSize]);
        }
        for (ulong c = tableStart; c < next; c++)
        {
            ulong ti = c / _perBlock;
            if (!newBlocks.ContainsKey(ti) && (ti >= (ulong)_table.Length || _table[ti] == 0))
                newBlocks[ti] = (next++, new byte[ClusterSize]); // a block placed past the end of an earlier block's range
        }
        if (newBlocks.Keys.Any(ti => ti >= newEntries))
            throw new ImageFormatException($"{_file.Path}: cannot grow the refcount table");
        _nextFree = next;
        foreach (var (ti, (cluster, data)) in newBlocks)
            table[ti] = cluster << _clusterBits;
        // Refcounts of the new clusters: in the new blocks, or in existing blocks (written now, leaked on a crash).
        for (ulong c = tableStart; c < next; c++)
        {
            ulong ti = c / _perBlock;
            if (newBlocks.TryGetValue(ti, out var nb))
                RefcountEntries.Set(nb.Data, c % _perBlock, _order, 1);
            else
                Set(c, 1);
        }
        foreach (var (_, (cluster, data)) in newBlocks)
        {
            _file.Write(cluster << _clusterBits, data);
            _blocks.Put(cluster << _clusterBits, data);
        }
        var raw = new byte[tableClusters << _clusterBits];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
        ulong newOffset = tableStart << _clusterBits;
        _file.Write(newOffset, raw);
        Sync();
        var header = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(header, newOffset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), (uint)tableClusters);
        _file.Write(48, header);
        Sync();
        ulong oldOffset = _tableOffset;
        int oldClusters = TableClusters;
        _table = table;
        _tableOffset = newOffset;
        _guard.RefcountTableOffset = newOffset;
        _guard.RefcountTableBytes = (ulong)raw.Length;
        for (int i = 0; i < oldClusters; i++)
            Decrement((oldOffset >> _clusterBits) + (ulong)i);
    }

    private void WriteTableEntry(ulong ti, ulong offset)
    {
        var raw = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(raw, offset);
        _file.Write(_tableOffset + ti * 8, raw);
        _table[ti] = offset;
    }

    private ulong BlockOffset(ulong ti)
    {
        ulong entry = _table[ti];
        if ((entry & ~OffsetMask) != 0)
            throw new ImageFormatException($"{_file.Path}: refcount table entry {ti} has reserved bits set");
        return entry;
    }

    private byte[] LoadBlock(ulong offset) => _blocks.Get(offset, o =>
    {
        _guard.Check(o, "refcount block");
        var block = new byte[ClusterSize];
        _file.ReadExact(o, block, "refcount block");
        return block;
    });

    public void Sync()
    {
        if (OrderedSync)
            _file.Flush();
    }

    private ulong ClustersIn(ulong bytes) => (bytes + ClusterSize - 1) >> _clusterBits;
}
