using System.Runtime.CompilerServices;
using Kiln.Devices.State;
using Kiln.Memory;

namespace Kiln.Virtio.Queue;

/// <summary>A split virtqueue (virtio 1.x section 2.7) as the device sees it: the driver's configuration (size, ring
/// addresses, ready, MSI-X vector) and the device's progress (next avail entry to consume, next used entry to fill).
/// Configuration is written by the transport while the queue is not ready; the rings are read and written only by the
/// device's worker. Every value the driver controls is validated before use.</summary>
public sealed class Virtqueue
{
    public const ushort NoVector = 0xFFFF;
    private const ushort AvailFlagNoInterrupt = 1;
    private const ushort UsedFlagNoNotify = 1;

    private readonly DescriptorChain _chain = new();
    private ushort _signalledUsed;
    private ushort _availShadow; // the driver's avail idx as last read; entries up to it were validated as present
    private bool _signalledValid;
    private bool _notificationsSuppressed;

    public Virtqueue(ushort maxSize)
    {
        if (maxSize == 0 || (maxSize & (maxSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(maxSize), "queue size must be a power of two");
        MaxSize = maxSize;
        Size = maxSize;
    }

    public ushort MaxSize { get; }
    public ushort Size { get; set; }
    public bool Ready { get; set; }
    public ulong DescTable { get; set; }
    public ulong AvailRing { get; set; }
    public ulong UsedRing { get; set; }
    public ushort MsixVector { get; set; } = NoVector;

    /// <summary>The next avail ring entry the device will consume.</summary>
    public ushort LastAvailIdx { get; private set; }

    /// <summary>The next used ring entry the device will fill (also the used idx it last published).</summary>
    public ushort NextUsedIdx { get; private set; }

    /// <summary>Negotiated ring features, fixed when the driver sets DRIVER_OK.</summary>
    internal bool EventIdx { get; set; }
    internal bool IndirectDesc { get; set; }

    /// <summary>Back to the power-on state (a device reset).</summary>
    public void Reset()
    {
        Size = MaxSize;
        Ready = false;
        DescTable = AvailRing = UsedRing = 0;
        MsixVector = NoVector;
        LastAvailIdx = NextUsedIdx = _availShadow = 0;
        _signalledUsed = 0;
        _signalledValid = false;
        _notificationsSuppressed = false;
        EventIdx = IndirectDesc = false;
    }

    /// <summary>Why this ready queue cannot be used, or null: the size must be a power of two no larger than the maximum,
    /// and each ring must be aligned and lie in guest RAM.</summary>
    public string? Validate(GuestMemory memory)
    {
        if (Size == 0 || Size > MaxSize || (Size & (Size - 1)) != 0)
            return $"queue size {Size} is not a power of two up to {MaxSize}";
        if (DescTable % 16 != 0 || AvailRing % 2 != 0 || UsedRing % 4 != 0)
            return "queue ring addresses are misaligned";
        if (!InRam(memory, DescTable, 16UL * Size))
            return $"descriptor table at 0x{DescTable:x} is outside guest RAM";
        if (!InRam(memory, AvailRing, 6 + 2UL * Size))
            return $"available ring at 0x{AvailRing:x} is outside guest RAM";
        if (!InRam(memory, UsedRing, 6 + 8UL * Size))
            return $"used ring at 0x{UsedRing:x} is outside guest RAM";
        return null;
    }

    private static bool InRam(GuestMemory memory, ulong address, ulong length) =>
        address + length >= address && memory.IsValid(new GuestAddress(address), length);

    /// <summary>Takes the next available chain, validated. Returns null when the driver has made nothing available.
    /// Throws <see cref="VirtioProtocolException"/> when the driver broke the protocol. The queue must have passed
    /// <see cref="Validate"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    public DescriptorChain? Pop(GuestMemory memory)
    {
        if (_availShadow == LastAvailIdx)
        {
            // Everything seen so far is consumed: look at the driver's index again. Entries known to be there need
            // no look (the index's cache line is the one the driver writes per entry, so reading it per chain would
            // cost a cache miss each time).
            _availShadow = ReadAvailIdx(memory);
            if (_availShadow == LastAvailIdx && EventIdx && !_notificationsSuppressed)
            {
                // Ask for a kick at the next entry, then look again so an entry added meanwhile is not missed.
                WriteAvailEvent(memory);
                Interlocked.MemoryBarrier();
                _availShadow = ReadAvailIdx(memory);
            }
            if (_availShadow == LastAvailIdx)
                return null;
            Volatile.ReadBarrier(); // read the ring entries only after the index that published them
        }
        ushort head = memory.Read<ushort>(new GuestAddress(AvailRing + 4 + 2UL * (ushort)(LastAvailIdx % Size)));
        _chain.Build(memory, new GuestAddress(DescTable), Size, head, IndirectDesc);
        LastAvailIdx++;
        if (EventIdx && !_notificationsSuppressed)
            WriteAvailEvent(memory);
        return _chain;
    }

    private ushort ReadAvailIdx(GuestMemory memory)
    {
        ushort availIdx = memory.Read<ushort>(new GuestAddress(AvailRing + 2));
        if ((ushort)(availIdx - LastAvailIdx) > Size)
            throw new VirtioProtocolException(
                $"avail idx {availIdx} is more than the queue size ({Size}) ahead of {LastAvailIdx}");
        return availIdx;
    }

    /// <summary>Asks the driver not to notify while the device polls the ring itself (VIRTQ_USED_F_NO_NOTIFY; with
    /// EVENT_IDX the avail event is simply left behind, so the driver's new entries never cross it). Notifications
    /// are only a hint to the driver, so a kick that comes anyway is harmless.</summary>
    public void SuppressNotifications(GuestMemory memory)
    {
        if (_notificationsSuppressed)
            return;
        _notificationsSuppressed = true;
        if (!EventIdx)
            memory.Write(new GuestAddress(UsedRing), UsedFlagNoNotify);
    }

    /// <summary>Asks for notifications again. The caller must then look at the ring once more (<see cref="Pop"/>):
    /// an entry the driver published before it saw this would bring no notification. Always writes the ring, since
    /// the suppression flag is not part of the saved state: after a restore the ring may still carry it.</summary>
    public void EnableNotifications(GuestMemory memory)
    {
        _notificationsSuppressed = false;
        if (EventIdx)
            WriteAvailEvent(memory);
        else
            memory.Write(new GuestAddress(UsedRing), (ushort)0);
        Interlocked.MemoryBarrier(); // the request for notifications before the caller's next look at avail idx
    }

    private void WriteAvailEvent(GuestMemory memory) =>
        memory.Write(new GuestAddress(UsedRing + 4 + 8UL * Size), LastAvailIdx);

    /// <summary>Returns a chain to the driver with the number of bytes the device wrote into it. With
    /// <paramref name="publish"/> false the element is written but the used idx is left for <see cref="PublishUsed"/>,
    /// so that several elements (one virtio-net frame over merged buffers) become visible at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    public void AddUsed(GuestMemory memory, ushort head, uint writtenLength, bool publish = true)
    {
        // A device may have filled the chain's buffers through spans (zero-copy disk reads), which no write log sees:
        // during a live migration, report them now that the writes are done. Buffers filled with GuestMemory.Write,
        // and the used ring itself, are logged by those writes. Contract for devices: a chain completed after others
        // were popped is no longer the current one, so its buffers must have been filled with GuestMemory.Write (as
        // virtio-net's receive does) or reported with GuestMemory.MarkWritten.
        if (memory.IsLoggingWrites && head == _chain.Head)
            _chain.MarkWritableWritten(memory);
        var element = new GuestAddress(UsedRing + 4 + 8UL * (ushort)(NextUsedIdx % Size));
        memory.Write(element, (uint)head);
        memory.Write(element + 4, writtenLength);
        NextUsedIdx++;
        if (publish)
            PublishUsed(memory);
    }

    /// <summary>Publishes the used idx for every element added so far.</summary>
    public void PublishUsed(GuestMemory memory)
    {
        Volatile.WriteBarrier(); // the elements must be visible before the index that publishes them
        memory.Write(new GuestAddress(UsedRing + 2), NextUsedIdx);
    }

    /// <summary>Whether the driver wants an interrupt for the used entries added since the last notification
    /// (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with VIRTIO_F_RING_EVENT_IDX).</summary>
    public bool NeedsNotification(GuestMemory memory)
    {
        Interlocked.MemoryBarrier(); // our used idx store must be ordered before reading the driver's suppression
        if (!EventIdx)
            return (memory.Read<ushort>(new GuestAddress(AvailRing)) & AvailFlagNoInterrupt) == 0;
        ushort usedEvent = memory.Read<ushort>(new GuestAddress(AvailRing + 4 + 2UL * Size));
        ushort old = _signalledUsed;
        bool valid = _signalledValid;
        _signalledUsed = NextUsedIdx;
        _signalledValid = true;
        if (!valid)
            return true;
        // vring_need_event: notify if used_event lies in [old, new).
        return (ushort)(NextUsedIdx - usedEvent - 1) < (ushort)(NextUsedIdx - old);
    }

    private const byte StateVersion = 1;

    public void SaveState(StateWriter w)
    {
        w.WriteByte(StateVersion);
        w.WriteUInt16(Size);
        w.WriteBool(Ready);
        w.WriteUInt64(DescTable);
        w.WriteUInt64(AvailRing);
        w.WriteUInt64(UsedRing);
        w.WriteUInt16(MsixVector);
        w.WriteUInt16(LastAvailIdx);
        w.WriteUInt16(NextUsedIdx);
        w.WriteUInt16(_signalledUsed);
        w.WriteBool(_signalledValid);
        w.WriteBool(EventIdx);
        w.WriteBool(IndirectDesc);
    }

    public void RestoreState(StateReader r)
    {
        r.ExpectVersion("virtqueue", StateVersion);
        ushort size = r.ReadUInt16();
        if (size == 0 || size > MaxSize || (size & (size - 1)) != 0)
            throw new StateFormatException($"virtqueue: bad size {size} (max {MaxSize})");
        Size = size;
        Ready = r.ReadBool();
        DescTable = r.ReadUInt64();
        AvailRing = r.ReadUInt64();
        UsedRing = r.ReadUInt64();
        MsixVector = r.ReadUInt16();
        LastAvailIdx = _availShadow = r.ReadUInt16(); // the index is read again on the next pop
        NextUsedIdx = r.ReadUInt16();
        _signalledUsed = r.ReadUInt16();
        _signalledValid = r.ReadBool();
        EventIdx = r.ReadBool();
        IndirectDesc = r.ReadBool();
    }
}
