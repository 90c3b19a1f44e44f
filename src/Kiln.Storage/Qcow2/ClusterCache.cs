namespace Kiln.Storage.Qcow2;

/// <summary>A small least-recently-used cache of metadata clusters (L2 tables, refcount blocks) keyed by host
/// offset. The cache is write-through: callers update the cached bytes and the file together.</summary>
internal sealed class ClusterCache(int capacity)
{
    private readonly Dictionary<ulong, LinkedListNode<(ulong Offset, byte[] Data)>> _map = [];
    private readonly LinkedList<(ulong Offset, byte[] Data)> _lru = new();

    public byte[] Get(ulong offset, Func<ulong, byte[]> load)
    {
        if (_map.TryGetValue(offset, out var node))
        {
            _lru.Remove(node);
            _lru.AddFirst(node);
            return node.Value.Data;
        }
        var data = load(offset);
        Put(offset, data);
        return data;
    }

    public void Put(ulong offset, byte[] data)
    {
        Remove(offset);
        _map[offset] = _lru.AddFirst((offset, data));
        while (_map.Count > capacity && _lru.Last is { } last)
        {
            _map.Remove(last.Value.Offset);
            _lru.RemoveLast();
        }
    }

    public void Remove(ulong offset)
    {
        if (_map.Remove(offset, out var node))
            _lru.Remove(node);
    }
}
