using Kiln.Devices.State;
using Kiln.Interop;
using Kiln.Memory;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio.Net;

/// <summary>Receive chains popped from the RX queue but not yet returned: a frame is written only once enough
/// buffers for all of it are at hand (with MRG_RXBUF the used elements must then appear together). Entries and their
/// buffer lists are reused, so steady-state receiving does not allocate.</summary>
internal sealed class RxStash
{
    private sealed class Entry
    {
        public ushort Head;
        public ulong Capacity;
        public readonly List<VirtqBuffer> Buffers = [];
    }

    private readonly List<Entry> _entries = [];
    private int _count;

    public int Count => _count;

    /// <summary>Device-writable bytes in all stashed chains.</summary>
    public ulong Capacity { get; private set; }

    public ushort HeadAt(int i) => _entries[i].Head;
    public ulong CapacityAt(int i) => _entries[i].Capacity;

    /// <summary>Keeps a validated, writable-only chain.</summary>
    public void Add(DescriptorChain chain)
    {
        var e = Next();
        e.Head = chain.Head;
        e.Capacity = chain.WritableLength;
        var buffers = chain.Buffers;
        for (int i = 0; i < buffers.Count; i++) // indexed: foreach over the interface would allocate an enumerator
            e.Buffers.Add(buffers[i]);
        Capacity += e.Capacity;
    }

    private Entry Next()
    {
        if (_count == _entries.Count)
            _entries.Add(new Entry());
        var e = _entries[_count++];
        e.Buffers.Clear();
        return e;
    }

    /// <summary>Copies <paramref name="data"/> into the start of stashed chain <paramref name="i"/> (which holds at
    /// least that many bytes).</summary>
    public void Write(GuestMemory memory, int i, ReadOnlySpan<byte> data) => WriteAt(memory, i, 0, data);

    /// <summary>Adds the first <paramref name="max"/> bytes of stashed chain <paramref name="i"/> to
    /// <paramref name="pieces"/> as spans over guest RAM (validated when the chain was popped). False when they do not
    /// fit: too many buffers, or one that crosses a RAM region boundary; then <paramref name="pieces"/> is partly
    /// filled and the caller falls back to copying.</summary>
    public bool TryGather(GuestMemory memory, int i, int max, ref FramePieces pieces)
    {
        foreach (var b in _entries[i].Buffers)
        {
            if (max == 0)
                return true;
            int n = (int)Math.Min(b.Length, (uint)max);
            if (!memory.TryGetSpan(b.Address, n, out var span) || !pieces.TryAdd(span))
                return false;
            max -= n;
        }
        return true;
    }

    /// <summary>Copies <paramref name="data"/> into stashed chain <paramref name="i"/> at byte
    /// <paramref name="offset"/> (which, with the data, lies within the chain).</summary>
    public void WriteAt(GuestMemory memory, int i, int offset, ReadOnlySpan<byte> data)
    {
        foreach (var b in _entries[i].Buffers)
        {
            if (data.IsEmpty)
                return;
            if (offset >= b.Length)
            {
                offset -= (int)b.Length;
                continue;
            }
            int n = (int)Math.Min(b.Length - (uint)offset, (uint)data.Length);
            memory.Write(b.Address + (ulong)offset, data[..n]);
            data = data[n..];
            offset = 0;
        }
    }

    /// <summary>Copies the first <paramref name="destination"/>.Length bytes of stashed chain <paramref name="i"/> out
    /// of guest RAM.</summary>
    public void ReadInto(GuestMemory memory, int i, Span<byte> destination)
    {
        foreach (var b in _entries[i].Buffers)
        {
            if (destination.IsEmpty)
                return;
            int n = (int)Math.Min(b.Length, (uint)destination.Length);
            memory.Read(b.Address, destination[..n]);
            destination = destination[n..];
        }
    }

    /// <summary>Reports the first <paramref name="length"/> bytes of stashed chain <paramref name="i"/> as written
    /// behind the write log's back (filled through spans), for a live migration's dirty tracking.</summary>
    public void MarkWritten(GuestMemory memory, int i, int length)
    {
        foreach (var b in _entries[i].Buffers)
        {
            if (length <= 0)
                return;
            uint n = Math.Min(b.Length, (uint)length);
            memory.MarkWritten(b.Address, n);
            length -= (int)n;
        }
    }

    public void Clear()
    {
        _count = 0;
        Capacity = 0;
    }

    public void Save(StateWriter w)
    {
        w.WriteUInt32((uint)_count);
        for (int i = 0; i < _count; i++)
        {
            var e = _entries[i];
            w.WriteUInt16(e.Head);
            w.WriteUInt32((uint)e.Buffers.Count);
            foreach (var b in e.Buffers)
            {
                w.WriteUInt64(b.Address.Value);
                w.WriteUInt32(b.Length);
            }
        }
    }

    /// <summary>Restores stashed chains, checking them as the chain walker would (in RAM, non-empty, bounded).</summary>
    public void Restore(StateReader r, GuestMemory memory, ushort maxQueueSize, string name)
    {
        Clear();
        uint count = r.ReadUInt32();
        if (count > maxQueueSize)
            throw new StateFormatException($"{name}: {count} stashed receive chains exceed the queue size {maxQueueSize}");
        for (uint i = 0; i < count; i++)
        {
            var e = Next();
            e.Head = r.ReadUInt16();
            uint buffers = r.ReadUInt32();
            if (e.Head >= maxQueueSize || buffers == 0 || buffers > maxQueueSize)
                throw new StateFormatException($"{name}: bad stashed receive chain (head {e.Head}, {buffers} buffers)");
            e.Capacity = 0;
            for (uint j = 0; j < buffers; j++)
            {
                var address = new GuestAddress(r.ReadUInt64());
                uint length = r.ReadUInt32();
                if (length == 0 || !memory.IsValid(address, length))
                    throw new StateFormatException($"{name}: stashed receive buffer [0x{address.Value:x}, +{length}) is not in guest RAM");
                e.Buffers.Add(new VirtqBuffer(address, length, true));
                e.Capacity += length;
            }
            Capacity += e.Capacity;
        }
    }
}
