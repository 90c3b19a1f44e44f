using System.Runtime.CompilerServices;
using Kiln.Memory;

namespace Kiln.Virtio.Queue;

/// <summary>A descriptor chain popped from a virtqueue, fully validated before any device sees it: every index in
/// range, no loop (the walk is bounded by the table size), no nested indirect table, every buffer non-empty and inside
/// guest RAM, device-readable buffers before device-writable ones, and a total length below 4 GiB.
/// One instance is reused per queue, so a device must finish with a chain before popping the next.</summary>
public sealed class DescriptorChain
{
    private readonly List<VirtqBuffer> _buffers = [];

    public ushort Head { get; private set; }
    public IReadOnlyList<VirtqBuffer> Buffers => _buffers;

    /// <summary>Total bytes the device may read (the device-readable buffers, which come first).</summary>
    public ulong ReadableLength { get; private set; }

    /// <summary>Total bytes the device may write (the device-writable buffers, which come last).</summary>
    public ulong WritableLength { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    internal void Build(GuestMemory memory, GuestAddress table, ushort queueSize, ushort head, bool indirectAllowed)
    {
        _buffers.Clear();
        ReadableLength = WritableLength = 0;
        Head = head;
        if (head >= queueSize)
            throw new VirtioProtocolException($"descriptor index {head} out of range (queue size {queueSize})");
        var first = Descriptor.ReadFrom(memory, table + (ulong)head * Descriptor.Size);
        if (first.IsIndirect)
        {
            BuildIndirect(memory, first, indirectAllowed);
            return;
        }
        Walk(memory, table, queueSize, head, first, "descriptor");
    }

    private void BuildIndirect(GuestMemory memory, Descriptor d, bool indirectAllowed)
    {
        if (!indirectAllowed)
            throw new VirtioProtocolException("indirect descriptor without VIRTIO_F_RING_INDIRECT_DESC");
        if (d.HasNext)
            throw new VirtioProtocolException("indirect descriptor with NEXT set");
        if (d.Length == 0 || d.Length % Descriptor.Size != 0)
            throw new VirtioProtocolException($"indirect table length {d.Length} is not a non-zero multiple of 16");
        uint count = d.Length / Descriptor.Size;
        if (count > ushort.MaxValue + 1u)
            throw new VirtioProtocolException($"indirect table of {count} descriptors is too long");
        if (!memory.IsValid(new GuestAddress(d.Address), d.Length))
            throw new VirtioProtocolException($"indirect table [0x{d.Address:x}, +{d.Length}) is outside guest RAM");
        var table = new GuestAddress(d.Address);
        Walk(memory, table, count, 0, Descriptor.ReadFrom(memory, table), "indirect descriptor");
    }

    /// <summary>Follows NEXT links through a table of <paramref name="count"/> entries; a chain may visit each entry
    /// at most once, so more than <paramref name="count"/> steps means a loop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private void Walk(GuestMemory memory, GuestAddress table, uint count, uint index, Descriptor d, string what)
    {
        for (uint steps = 1; ; steps++)
        {
            if (d.IsIndirect)
                throw new VirtioProtocolException(what == "descriptor"
                    ? $"indirect descriptor {index} inside a chain"
                    : "nested indirect descriptor");
            Add(memory, d, index, what);
            if (!d.HasNext)
                return;
            if (steps >= count)
                throw new VirtioProtocolException($"{what} chain longer than its table ({count}): a loop");
            index = d.Next;
            if (index >= count)
                throw new VirtioProtocolException($"{what} index {index} out of range (table size {count})");
            d = Descriptor.ReadFrom(memory, table + (ulong)index * Descriptor.Size);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private void Add(GuestMemory memory, Descriptor d, uint index, string what)
    {
        if (d.Length == 0)
            throw new VirtioProtocolException($"{what} {index} has length 0");
        if (d.Address + d.Length < d.Address || !memory.IsValid(new GuestAddress(d.Address), d.Length))
            throw new VirtioProtocolException($"{what} {index} buffer [0x{d.Address:x}, +{d.Length}) is outside guest RAM");
        if (d.IsWritable)
            WritableLength += d.Length;
        else if (WritableLength != 0)
            throw new VirtioProtocolException($"{what} {index} is device-readable after a device-writable one");
        else
            ReadableLength += d.Length;
        if (ReadableLength + WritableLength > uint.MaxValue)
            throw new VirtioProtocolException("descriptor chain longer than 4 GiB");
        _buffers.Add(new VirtqBuffer(new GuestAddress(d.Address), d.Length, d.IsWritable));
    }

    /// <summary>Reports every device-writable buffer as written (<see cref="GuestMemory.MarkWritten"/>), for a live
    /// migration's dirty tracking.</summary>
    internal void MarkWritableWritten(GuestMemory memory)
    {
        foreach (var b in _buffers)
            if (b.IsWritable)
                memory.MarkWritten(b.Address, b.Length);
    }

    /// <summary>The guest-memory pieces (each at most 1 MiB) covering [offset, offset+length) of the chain's readable
    /// or writable bytes. The range must lie within <see cref="ReadableLength"/> / <see cref="WritableLength"/>.</summary>
    public IEnumerable<(GuestAddress Address, int Length)> Pieces(bool writable, ulong offset, ulong length)
    {
        const uint MaxPiece = 1 << 20;
        foreach (var b in _buffers)
        {
            if (b.IsWritable != writable || length == 0)
                continue;
            if (offset >= b.Length)
            {
                offset -= b.Length;
                continue;
            }
            ulong take = Math.Min(b.Length - offset, length);
            for (ulong done = 0; done < take;)
            {
                int piece = (int)Math.Min(take - done, MaxPiece);
                yield return (b.Address + offset + done, piece);
                done += (ulong)piece;
            }
            offset = 0;
            length -= take;
        }
    }

    /// <summary>Copies readable bytes starting at <paramref name="offset"/> into <paramref name="destination"/>;
    /// returns how many were available.</summary>
    public int Read(GuestMemory memory, ulong offset, Span<byte> destination)
    {
        if (offset >= ReadableLength)
            return 0;
        int done = 0;
        foreach (var (address, length) in Pieces(false, offset, Math.Min((ulong)destination.Length, ReadableLength - offset)))
        {
            memory.Read(address, destination.Slice(done, length));
            done += length;
        }
        return done;
    }

    /// <summary>Copies <paramref name="source"/> into writable bytes starting at <paramref name="offset"/>; returns how
    /// many fitted.</summary>
    public int Write(GuestMemory memory, ulong offset, ReadOnlySpan<byte> source)
    {
        if (offset >= WritableLength)
            return 0;
        int done = 0;
        foreach (var (address, length) in Pieces(true, offset, Math.Min((ulong)source.Length, WritableLength - offset)))
        {
            memory.Write(address, source.Slice(done, length));
            done += length;
        }
        return done;
    }
}
