namespace Kiln.Storage.Qcow2;

/// <summary>L2 entries that completed requests have decided but that are not yet in the file: writes that allocated
/// (or zeroed) clusters are acknowledged once their data and refcounts are written, and their L2 entries follow in a
/// batch — one fsync for many allocations, as QEMU's write-back metadata cache does. Until then lookups see these
/// entries first. For each guest cluster it remembers the entry the file still holds (its clusters are released only
/// after the replacement is durable) and the clusters of entries superseded before they ever reached the file.</summary>
internal sealed class DeferredMappings
{
    private readonly Dictionary<ulong, Mapping> _byCluster = [];
    private readonly List<ulong> _orphans = [];

    private readonly record struct Mapping(ulong Raw, L2Entry Entry, L2Entry Durable);

    public int Count => _byCluster.Count;

    public bool TryGet(ulong guestCluster, out L2Entry entry)
    {
        if (_byCluster.TryGetValue(guestCluster, out var m))
        {
            entry = m.Entry;
            return true;
        }
        entry = default;
        return false;
    }

    /// <summary>Records <paramref name="raw"/> (decoded: <paramref name="entry"/>) for a guest cluster whose current
    /// entry was <paramref name="seen"/> (the deferred one if there was one, else the file's).</summary>
    public void Add(ulong guestCluster, ulong raw, L2Entry entry, L2Entry seen)
    {
        var durable = seen;
        if (_byCluster.TryGetValue(guestCluster, out var earlier))
        {
            durable = earlier.Durable;
            ulong superseded = earlier.Entry.HostOffset;
            // A cluster allocated for the earlier entry was never referenced from the file: free it after the commit.
            if (superseded != 0 && earlier.Entry.Kind == ClusterKind.Normal && superseded != durable.HostOffset
                && superseded != entry.HostOffset)
                _orphans.Add(superseded);
        }
        _byCluster[guestCluster] = new Mapping(raw, entry, durable);
    }

    /// <summary>The entries to write, in guest-cluster order.</summary>
    public List<(ulong GuestCluster, ulong Raw)> Entries()
    {
        var list = new List<(ulong, ulong)>(_byCluster.Count);
        foreach (var (cluster, m) in _byCluster)
            list.Add((cluster, m.Raw));
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>Forgets everything (the entries are now in the file) and returns what must be released: the file's
    /// old entries that were replaced by ones pointing elsewhere, and the orphaned clusters.</summary>
    public (List<L2Entry> Replaced, List<ulong> Orphans) Clear()
    {
        var replaced = new List<L2Entry>();
        foreach (var m in _byCluster.Values)
            if (m.Durable.HostOffset != 0 && m.Durable.Kind != ClusterKind.Unallocated && m.Durable.HostOffset != m.Entry.HostOffset)
                replaced.Add(m.Durable);
        var orphans = new List<ulong>(_orphans);
        _byCluster.Clear();
        _orphans.Clear();
        return (replaced, orphans);
    }
}
