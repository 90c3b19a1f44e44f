using System.Buffers.Binary;

namespace Kiln.Storage.Qcow2;

/// <summary>A qcow2 image as a virtio-blk backend. Reads walk L1 → L2 → data (zero, compressed, or the backing
/// chain for unallocated clusters); writes to a cluster the image does not own copy the whole cluster into a newly
/// allocated one (data, then refcount, sync, then the L2 entry, L1 last). The L2 entries of completed requests are
/// written in batches (<see cref="DeferredMappings"/>): at a flush, when <see cref="CommitThreshold"/> are waiting,
/// <see cref="CommitDelay"/> after the first one, and at dispose. So an allocating write costs no fsync of its own,
/// and a crash loses at most writes the guest had not flushed (their clusters leak). All public calls hold one
/// lock.
/// One file over 400 lines on purpose: the read path, the allocating write path and the metadata commit order are one crash-consistency argument that reads best in one place.</summary>
public sealed class Qcow2Disk : IDiskBackend, IAllocationMap
{
    private readonly object _gate = new();
    private readonly ImageFile _file;
    private readonly RefcountTable _refcounts;
    private readonly ClusterMap _map;
    private readonly IDiskBackend? _backing;
    private readonly byte[] _compressed;
    private readonly byte[] _cow;
    private readonly List<(ulong GuestCluster, ulong Raw, L2Entry Old)> _pending = [];
    private readonly DeferredMappings _deferred = new();
    private readonly Timer _commitTimer;
    private bool _commitTimerArmed;
    private ulong _compressedAt = ulong.MaxValue;
    private bool _disposed;

    private Qcow2Disk(ImageFile file, Qcow2Header header, IDiskBackend? backing)
    {
        _file = file;
        Header = header;
        _backing = backing;
        var guard = new MetadataGuard(file, header.ClusterBits)
        {
            L1Offset = header.L1TableOffset, L1Bytes = header.L1Bytes,
            RefcountTableOffset = header.RefcountTableOffset, RefcountTableBytes = header.RefcountTableBytes,
        };
        _refcounts = new RefcountTable(file, header, guard);
        _map = new ClusterMap(file, header, guard, _refcounts);
        _compressed = new byte[header.ClusterSize];
        _cow = new byte[header.ClusterSize];
        Capacity = header.Size;
        _commitTimer = new Timer(_ => CommitFromTimer());
    }

    /// <summary>Deferred L2 entries that force a commit (each costs 8 bytes of memory until then).</summary>
    public const int CommitThreshold = 4096;

    /// <summary>How long a completed allocating write may wait for its L2 entry to reach the file (about as long as
    /// the kernel lets dirty pages wait).</summary>
    public static readonly TimeSpan CommitDelay = TimeSpan.FromSeconds(5);

    public string Path => _file.Path;
    public Qcow2Header Header { get; private set; }
    public IDiskBackend? Backing => _backing;
    public ulong Capacity { get; private set; }
    public bool IsReadOnly => _file.ReadOnly;
    internal RefcountTable Refcounts => _refcounts;
    internal ClusterMap Map => _map;
    internal ImageFile File => _file;
    private int ClusterBits => Header.ClusterBits;
    private ulong ClusterSize => Header.ClusterSize;

    /// <summary>When false, metadata updates are not separated by fsyncs (safe only for a fresh image whose
    /// contents a crash may lose anyway, as in convert).</summary>
    public bool OrderedSync
    {
        get => _refcounts.OrderedSync;
        set => _refcounts.OrderedSync = value;
    }

    /// <summary>Opens a qcow2 image. <paramref name="openBacking"/> opens the backing file (read-only) given its
    /// resolved path and format (null: probe); it is called only when the header names one.</summary>
    internal static Qcow2Disk Open(string path, bool readOnly, Func<string, string?, IDiskBackend>? openBacking)
    {
        var file = ImageFile.Open(path, readOnly);
        IDiskBackend? backing = null;
        try
        {
            var header = Qcow2HeaderParser.Read(file);
            if (!readOnly)
            {
                if (header.IsCorrupt)
                    throw new ImageFormatException($"{path}: image is marked corrupt; refusing to write (repair it with 'qemu-img check -r all')");
                if (header.IsDirty)
                    throw new ImageFormatException($"{path}: image is dirty (lazy refcounts); repair it with 'qemu-img check -r all' before writing");
                if (header.SnapshotCount > 0)
                    throw new ImageFormatException($"{path}: writing images with internal snapshots is not supported");
                if (header.AutoclearFeatures != 0)
                {
                    file.Write(88, new byte[8]); // we do not maintain the features these bits vouch for
                    header = header with { AutoclearFeatures = 0 };
                }
            }
            if (header.BackingFile is { } name)
            {
                if (openBacking is null)
                    throw new ImageFormatException($"{path}: has a backing file but no way to open it");
                backing = openBacking(BackingChain.Resolve(path, name), header.BackingFormat);
            }
            return new Qcow2Disk(file, header, backing);
        }
        catch
        {
            backing?.Dispose();
            file.Dispose();
            throw;
        }
    }

    public void Read(ulong offset, Span<byte> destination)
    {
        lock (_gate)
        {
            CheckRange(offset, (ulong)destination.Length);
            while (!destination.IsEmpty)
            {
                ulong guestCluster = offset >> ClusterBits;
                int within = (int)(offset & (ClusterSize - 1));
                int n = (int)Math.Min((ulong)destination.Length, ClusterSize - (ulong)within);
                var entry = Lookup(guestCluster);
                if (entry.Kind == ClusterKind.Normal)
                    n = ContiguousRun(guestCluster, entry.HostOffset, within, destination.Length);
                ReadPiece(guestCluster, entry, within, destination[..n]);
                destination = destination[n..];
                offset += (ulong)n;
            }
        }
    }

    /// <summary>Bytes from <paramref name="within"/> that lie in host-contiguous normal clusters (one pread for a
    /// sequential read of a freshly converted image), up to <paramref name="wanted"/>. Every cluster is checked.</summary>
    private int ContiguousRun(ulong guestCluster, ulong host, int within, int wanted)
    {
        CheckDataCluster(host);
        ulong run = ClusterSize - (ulong)within;
        while (run < (ulong)wanted)
        {
            var next = Lookup(++guestCluster);
            host += ClusterSize;
            if (next.Kind != ClusterKind.Normal || next.HostOffset != host)
                break;
            CheckDataCluster(host);
            run += ClusterSize;
        }
        return (int)Math.Min(run, (ulong)wanted);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        lock (_gate)
        {
            CheckWritable();
            CheckRange(offset, (ulong)source.Length);
            try
            {
                while (!source.IsEmpty)
                {
                    ulong guestCluster = offset >> ClusterBits;
                    int within = (int)(offset & (ClusterSize - 1));
                    int n = (int)Math.Min((ulong)source.Length, ClusterSize - (ulong)within);
                    WritePiece(guestCluster, within, source[..n]);
                    source = source[n..];
                    offset += (ulong)n;
                }
                CommitPending();
            }
            finally
            {
                _pending.Clear(); // after a failure: the new clusters stay unreferenced (leaked), never half-mapped
            }
        }
    }

    public void Flush()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            CommitDeferred();
            _file.Flush();
        }
    }

    public void Discard(ulong offset, ulong length) => WriteZeroes(offset, length, mayUnmap: true);

    public void WriteZeroes(ulong offset, ulong length, bool mayUnmap)
    {
        lock (_gate)
        {
            CheckWritable();
            CheckRange(offset, length);
            try
            {
                while (length > 0)
                {
                    ulong guestCluster = offset >> ClusterBits;
                    int within = (int)(offset & (ClusterSize - 1));
                    int n = (int)Math.Min(length, ClusterSize - (ulong)within);
                    if (n == (int)ClusterSize)
                        ZeroCluster(guestCluster);
                    else if (!ReadsAsZero(guestCluster, within, n))
                        WritePiece(guestCluster, within, new byte[n]);
                    offset += (ulong)n;
                    length -= (ulong)n;
                }
                CommitPending();
            }
            finally
            {
                _pending.Clear();
            }
        }
    }

    /// <summary>Grows the virtual size (and the L1 table if it must). Shrinking is refused.</summary>
    public void Resize(ulong newSize)
    {
        lock (_gate)
        {
            CheckWritable();
            if (newSize < Capacity)
                throw new DiskException($"{Path}: shrinking a qcow2 image is not supported");
            CommitDeferred();
            ulong entries = Qcow2Header.L1EntriesFor(newSize, ClusterBits);
            if (entries * 8 > Qcow2Header.MaxL1Bytes)
                throw new DiskException($"{Path}: {newSize} bytes is too large for {ClusterSize}-byte clusters");
            if (entries > Header.L1Size)
            {
                _map.Grow((uint)entries);
                Header = Header with { L1Size = (uint)entries, L1TableOffset = _map.L1Offset };
            }
            var raw = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(raw, newSize);
            _file.Write(24, raw);
            _file.Flush();
            Header = Header with { Size = newSize };
            Capacity = newSize;
        }
    }

    /// <summary>Zero and unallocated clusters hold no data; under an unallocated one, the backing file decides (past
    /// its end, or without one, the range reads as zero).</summary>
    public bool IsKnownZero(ulong offset, ulong length)
    {
        lock (_gate)
        {
            CheckRange(offset, length);
            ulong end = offset + length;
            while (offset < end)
            {
                ulong guestCluster = offset >> ClusterBits;
                ulong pieceEnd = Math.Min(end, (guestCluster + 1) << ClusterBits);
                var entry = Lookup(guestCluster);
                bool zero = entry.Kind switch
                {
                    ClusterKind.Zero => true,
                    ClusterKind.Unallocated => _backing is null || offset >= _backing.Capacity
                        || (_backing is IAllocationMap map && map.IsKnownZero(offset, Math.Min(pieceEnd, _backing.Capacity) - offset)),
                    _ => false,
                };
                if (!zero)
                    return false;
                offset = pieceEnd;
            }
            return true;
        }
    }

    private void ReadPiece(ulong guestCluster, L2Entry entry, int within, Span<byte> destination)
    {
        switch (entry.Kind)
        {
            case ClusterKind.Unallocated:
                ReadBacking((guestCluster << ClusterBits) + (ulong)within, destination);
                break;
            case ClusterKind.Zero:
                destination.Clear();
                break;
            case ClusterKind.Normal:
                CheckDataCluster(entry.HostOffset);
                _file.ReadAvailable(entry.HostOffset + (ulong)within, destination);
                break;
            case ClusterKind.Compressed:
                if (_compressedAt != entry.HostOffset)
                {
                    _compressedAt = ulong.MaxValue;
                    CompressedCluster.Read(_file, entry, _compressed);
                    _compressedAt = entry.HostOffset;
                }
                _compressed.AsSpan(within, destination.Length).CopyTo(destination);
                break;
        }
    }

    private void ReadBacking(ulong offset, Span<byte> destination)
    {
        ulong available = _backing is null || offset >= _backing.Capacity ? 0 : Math.Min((ulong)destination.Length, _backing.Capacity - offset);
        if (available > 0)
            _backing!.Read(offset, destination[..(int)available]);
        destination[(int)available..].Clear();
    }

    private void WritePiece(ulong guestCluster, int within, ReadOnlySpan<byte> source)
    {
        var entry = Lookup(guestCluster);
        if (entry.Kind == ClusterKind.Normal && entry.Copied)
        {
            CheckDataCluster(entry.HostOffset);
            _file.Write(entry.HostOffset + (ulong)within, source);
            return;
        }
        bool zeroSource = entry.Kind == ClusterKind.Zero || (entry.Kind == ClusterKind.Unallocated && _backing is null);
        if (zeroSource && !(entry.Kind == ClusterKind.Zero && entry.HostOffset != 0) && _refcounts.NextAllocationIsPastEnd)
        {
            // A fresh cluster past the end of the file reads as zeros already: write only the new bytes and extend the
            // file over the rest (sparse), instead of writing a whole cluster of zeros.
            ulong fresh = _refcounts.Allocate(1);
            _file.Write(fresh + (ulong)within, source);
            if (_file.Length < fresh + ClusterSize)
                _file.SetLength(fresh + ClusterSize);
            _pending.Add((guestCluster, fresh | L2Entry.CopiedFlag, entry));
            return;
        }
        // Copy-on-write: the whole cluster's current contents, with the new bytes over them.
        var cluster = _cow.AsSpan();
        if (source.Length != cluster.Length)
            ReadPiece(guestCluster, entry, 0, cluster);
        source.CopyTo(cluster[within..]);
        if (entry.Kind == ClusterKind.Zero && entry.HostOffset != 0 && entry.Copied)
        {
            CheckDataCluster(entry.HostOffset); // a preallocated zero cluster: fill it, then clear the flag
            _file.Write(entry.HostOffset, cluster);
            _pending.Add((guestCluster, entry.HostOffset | L2Entry.CopiedFlag, entry)); // same cluster: nothing to release
            return;
        }
        ulong host = _refcounts.Allocate(1);
        _file.Write(host, cluster);
        _pending.Add((guestCluster, host | L2Entry.CopiedFlag, entry));
    }

    /// <summary>Hands this request's new L2 entries to the deferred set (the request is complete: its data and
    /// refcounts are written) and commits the set when it is large; otherwise arms the commit timer.</summary>
    private void CommitPending()
    {
        if (_pending.Count == 0)
            return;
        foreach (var (guestCluster, raw, old) in _pending)
            _deferred.Add(guestCluster, raw, L2Entry.Decode(raw, ClusterBits, Header.Version, Path), old);
        _pending.Clear();
        if (_deferred.Count >= CommitThreshold)
            CommitDeferred();
        else if (!_commitTimerArmed)
        {
            _commitTimerArmed = true;
            _commitTimer.Change(CommitDelay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Points the L2 entries of the deferred requests' new clusters at them, after one sync makes their
    /// data and refcounts durable; then, after another, drops the references the replaced entries held. A crash
    /// anywhere leaves at worst leaked clusters. If writing an entry fails the set stays (a retry writes the same
    /// values again); once all are written it is cleared before any release, so no reference is dropped twice.</summary>
    private void CommitDeferred()
    {
        if (_deferred.Count == 0)
            return;
        _refcounts.Sync();
        _map.SetMany(_deferred.Entries());
        var (replaced, orphans) = _deferred.Clear();
        if (replaced.Count == 0 && orphans.Count == 0)
            return;
        _refcounts.Sync();
        foreach (var old in replaced)
            Release(old);
        foreach (ulong cluster in orphans)
            _refcounts.Decrement(cluster >> ClusterBits);
    }

    private void CommitFromTimer()
    {
        lock (_gate)
        {
            _commitTimerArmed = false;
            if (_disposed)
                return;
            try
            {
                CommitDeferred();
            }
            catch (IOException)
            {
                // The entries stay deferred: the next flush retries and reports the failure to the guest.
            }
        }
    }

    private L2Entry Lookup(ulong guestCluster) =>
        _deferred.TryGet(guestCluster, out var entry) ? entry : _map.Lookup(guestCluster);

    private void ZeroCluster(ulong guestCluster)
    {
        var entry = Lookup(guestCluster);
        if (Header.Version < 3)
        {
            if (entry.Kind != ClusterKind.Unallocated || _backing is not null)
                WritePiece(guestCluster, 0, new byte[ClusterSize]);
            return;
        }
        if (entry.Kind == ClusterKind.Zero && entry.HostOffset == 0)
            return;
        if (entry.Kind == ClusterKind.Unallocated && _backing is null)
            return;
        _pending.Add((guestCluster, L2Entry.ZeroFlag, entry));
    }

    private static bool NeedsRelease(L2Entry old) => old.HostOffset != 0 && old.Kind != ClusterKind.Unallocated;

    /// <summary>Drops the references an old L2 entry held, after the entry that replaced it is durable.</summary>
    private void Release(L2Entry old)
    {
        if (!NeedsRelease(old))
            return;
        if (old.Kind == ClusterKind.Compressed)
            foreach (ulong c in old.CompressedClusters(ClusterBits))
                _refcounts.Decrement(c);
        else
            _refcounts.Decrement(old.HostOffset >> ClusterBits);
    }

    private bool ReadsAsZero(ulong guestCluster, int within, int length)
    {
        var entry = Lookup(guestCluster);
        if (entry.Kind == ClusterKind.Zero || (entry.Kind == ClusterKind.Unallocated && _backing is null))
            return true;
        var current = new byte[length];
        ReadPiece(guestCluster, entry, within, current);
        return !current.AsSpan().ContainsAnyExcept((byte)0);
    }

    private void CheckDataCluster(ulong host)
    {
        if (host % ClusterSize != 0)
            throw new ImageFormatException($"{Path}: data cluster offset {host} is not cluster-aligned");
        if (host < ClusterSize)
            throw new ImageFormatException($"{Path}: data cluster points into the header");
        if (host >= _file.Length)
            throw new ImageFormatException($"{Path}: data cluster offset {host} lies past the end of the file ({_file.Length} bytes)");
        if (host + ClusterSize > Header.L1TableOffset && host < Header.L1TableOffset + Header.L1Bytes)
            throw new ImageFormatException($"{Path}: data cluster offset {host} points into the L1 table");
        if (host + ClusterSize > _refcounts.TableOffset && host < _refcounts.TableOffset + ((ulong)_refcounts.TableClusters << ClusterBits))
            throw new ImageFormatException($"{Path}: data cluster offset {host} points into the refcount table");
    }

    private void CheckRange(ulong offset, ulong length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset > Capacity || length > Capacity - offset)
            throw new DiskException($"{Path}: access [{offset}, +{length}) is outside the disk ({Capacity} bytes)");
    }

    private void CheckWritable()
    {
        if (IsReadOnly)
            throw new DiskException($"{Path}: disk is read-only");
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _commitTimer.Dispose();
            if (!IsReadOnly)
            {
                try
                {
                    CommitDeferred();
                    _file.Flush();
                }
                catch (IOException)
                {
                    // Nothing can report it now; the file is consistent (the uncommitted clusters are leaked).
                }
            }
            _file.Dispose();
            _backing?.Dispose();
        }
    }
}
