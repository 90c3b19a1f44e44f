using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Kiln.Devices.State;
using Kiln.Interop;
using Kiln.Memory;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio.Net;

/// <summary>virtio-net (device type 1) over an <see cref="INetBackend"/>: one queue pair, queue 0 receives (host to
/// guest), queue 1 transmits. Frames keep their 12-byte virtio_net_hdr_v1 end to end, so checksum and segmentation
/// offloads pass straight through to a tap. A receive frame is held (never spun on) until the driver posts enough
/// buffers; a transmit chain that breaks the protocol puts the device into DEVICE_NEEDS_RESET. When the backend has a
/// pollable descriptor, the device's worker waits for it too and wakes straight on incoming frames.
/// One file over 400 lines on purpose: both queues share the backend, the stash and the offload state under one lock discipline; the receive and transmit paths are split into methods here rather than files so that discipline stays visible.</summary>
public sealed class VirtioNet : VirtioDevice
{
    public const ushort QueueSize = 256;
    public const int ConfigLength = 10; // mac[6], status, max_virtqueue_pairs
    public const ushort StatusLinkUp = 1;

    private const int ReceiveQueue = 0, TransmitQueue = 1;
    private const int RxBurst = 256; // frames per pass before yielding to the worker loop (as QEMU's tx_burst)

    private readonly INetBackend _backend;
    private readonly ulong _features;
    private readonly byte[] _rxFrame = new byte[NetHeader.MaxFrame];
    private readonly byte[] _txFrame = new byte[NetHeader.MaxFrame];
    private readonly RxStash _stash = new();
    private readonly byte[] _txHeader = new byte[NetHeader.Size];
    // No polling window for transmit: a stream keeps the ring busy anyway, and when it empties it is because the
    // guest's vCPU is not running; a spinning worker then only delays it (measured: bench/io/README.md).
    private readonly RingPoller _txPoller = new(poll: false);
    private readonly Action<DescriptorChain> _transmitOne;
    private Virtqueue? _txQueue; // the queue _transmitOne completes on (one delegate, no closure per kick)
    private bool _txCompleted;
    private int _rxPending; // length of the frame in _rxFrame waiting for guest buffers; 0: none
    private NetOffloads _offloads;
    private volatile bool _linkUp = true;
    private bool _backendBroken;

    /// <param name="mac">The guest's address; by default a locally administered one derived from the backend's name.</param>
    public VirtioNet(GuestMemory memory, INetBackend backend, MacAddress? mac = null) : base(memory, 2, QueueSize)
    {
        _backend = backend;
        Mac = mac ?? MacAddress.FromName(backend.Name);
        _transmitOne = TransmitOne;
        _features = NetFeatures.Always | NetFeatures.HostOffloads | NetFeatures.GuestOffloads(backend.SupportedOffloads);
    }

    /// <summary>A device on the tap described by <paramref name="options"/> (created if missing, brought up, added to
    /// the bridge if one is named). Throws <see cref="NetBackendException"/> with one line naming the interface.</summary>
    public static VirtioNet OpenTap(GuestMemory memory, NetDeviceOptions options)
    {
        var tap = TapBackend.Open(options.Tap, options.Bridge);
        try
        {
            return new VirtioNet(memory, tap, options.Mac);
        }
        catch
        {
            tap.Dispose();
            throw;
        }
    }

    public override VirtioDeviceType DeviceType => VirtioDeviceType.Net;
    public override string Name => "virtio-net";
    public MacAddress Mac { get; }
    public NetMetrics Metrics { get; } = new();
    public INetBackend Backend => _backend;
    public bool LinkUp => _linkUp;

    /// <summary>The offloads currently enabled on the backend (what the driver negotiated).</summary>
    public NetOffloads ActiveOffloads => _offloads;

    protected override ulong DeviceSpecificFeatures => _features;

    protected override FileDescriptor? HostReadableFd => _backend.ReadableFd;

    public override int ConfigSize => ConfigLength;

    public override void ReadConfig(int offset, Span<byte> data)
    {
        Span<byte> config = stackalloc byte[ConfigLength];
        Mac.CopyTo(config);
        BinaryPrimitives.WriteUInt16LittleEndian(config[6..], _linkUp ? StatusLinkUp : (ushort)0);
        BinaryPrimitives.WriteUInt16LittleEndian(config[8..], 1);
        config.Slice(offset, data.Length).CopyTo(data);
    }

    /// <summary>Changes the link status the guest sees (config change interrupt). While down, frames are dropped.</summary>
    public void SetLinkUp(bool up)
    {
        _linkUp = up;
        ConfigChanged();
        if (up)
            Kick();
    }

    /// <summary>For backends without <see cref="INetBackend.ReadableFd"/>: frames are waiting in the backend.</summary>
    public void BackendReadable() => Kick();

    protected override void ProcessQueue(int index, Virtqueue queue)
    {
        if (index == TransmitQueue)
            Transmit(queue);
        else if (index == ReceiveQueue)
            Receive(queue);
    }

    // ---- transmit ----

    /// <summary>Sends what the driver queued, with the driver asked not to notify while chains keep coming
    /// (<see cref="RingPoller"/>), so a driver that keeps the ring topped up needs no notification per batch. The
    /// used ring is published per frame (the driver can reuse the buffer at once); the interrupt is asked for every
    /// 32 frames and once at the end.</summary>
    private void Transmit(Virtqueue queue)
    {
        _txQueue = queue;
        _txCompleted = false;
        _txPoller.Serve(queue, Memory, _transmitOne);
        if (_txCompleted)
            NotifyQueue(TransmitQueue, queue);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private void TransmitOne(DescriptorChain chain)
    {
        if (chain.WritableLength != 0)
            throw new VirtioProtocolException("transmit buffer is device-writable");
        if (chain.ReadableLength < NetHeader.Size)
            throw new VirtioProtocolException($"transmit chain of {chain.ReadableLength} bytes has no {NetHeader.Size}-byte header");
        if (chain.ReadableLength > NetHeader.MaxFrame)
            throw new VirtioProtocolException($"transmit chain of {chain.ReadableLength} bytes exceeds {NetHeader.MaxFrame}");
        Send(chain);
        var queue = _txQueue!;
        queue.AddUsed(Memory, chain.Head, 0);
        _txCompleted = true;
        if (queue.LastAvailIdx % 32 == 0)
            NotifyQueue(TransmitQueue, queue); // a driver waiting for TX buffers need not wait for the whole burst
    }

    /// <summary>Hands one frame to the backend: the header from a copy that was checked (so the backend sees exactly
    /// what was checked, whatever the driver writes meanwhile), the rest straight from the guest's buffers when they
    /// fit in one gather, else from a staging copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private void Send(DescriptorChain chain)
    {
        int length = (int)chain.ReadableLength;
        bool sent = false;
        if (_linkUp && !_backendBroken && length >= NetHeader.Size + 14)
        {
            ReadChain(chain, 0, _txHeader);
            if (OffloadsAllowed(_txHeader))
            {
                try
                {
                    var pieces = new FramePieces();
                    sent = GatherTransmit(chain, ref pieces) ? _backend.Send(in pieces) : SendCopied(chain, length);
                }
                catch (SystemCallException e)
                {
                    BackendFailed(e);
                }
            }
        }
        if (sent)
        {
            Interlocked.Increment(ref Metrics.TxPacketsValue);
            Interlocked.Add(ref Metrics.TxBytesValue, length - NetHeader.Size);
        }
        else
            Interlocked.Increment(ref Metrics.TxDroppedValue);
    }

    /// <summary>The checked header, then the chain's bytes after it as spans over guest RAM (validated by the chain
    /// walk). False when they need more pieces than one gather holds, or a buffer crosses a RAM region.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private bool GatherTransmit(DescriptorChain chain, ref FramePieces pieces)
    {
        pieces.TryAdd(_txHeader);
        int skip = NetHeader.Size;
        var buffers = chain.Buffers;
        for (int i = 0; i < buffers.Count; i++)
        {
            var b = buffers[i];
            if (skip >= b.Length)
            {
                skip -= (int)b.Length;
                continue;
            }
            if (!Memory.TryGetSpan(b.Address + (ulong)skip, (int)b.Length - skip, out var span) || !pieces.TryAdd(span))
                return false;
            skip = 0;
        }
        return true;
    }

    private bool SendCopied(DescriptorChain chain, int length)
    {
        var frame = _txFrame.AsSpan(0, length);
        ReadChain(chain, 0, frame);
        _txHeader.CopyTo(frame);
        return _backend.Send(frame);
    }

    /// <summary>Copies the chain's readable bytes from <paramref name="offset"/> into <paramref name="destination"/>
    /// (which they fill: the caller checked the length). Indexed over the buffers: no enumerator per frame.</summary>
    private void ReadChain(DescriptorChain chain, int offset, Span<byte> destination)
    {
        var buffers = chain.Buffers;
        for (int i = 0; i < buffers.Count && !destination.IsEmpty; i++)
        {
            var b = buffers[i];
            if (offset >= b.Length)
            {
                offset -= (int)b.Length;
                continue;
            }
            int n = (int)Math.Min(b.Length - (uint)offset, (uint)destination.Length);
            Memory.Read(b.Address + (ulong)offset, destination[..n]);
            destination = destination[n..];
            offset = 0;
        }
    }

    /// <summary>A frame may ask for checksum or segmentation offload only if the driver negotiated it.</summary>
    private bool OffloadsAllowed(ReadOnlySpan<byte> header)
    {
        if ((header[NetHeader.FlagsOffset] & NetHeader.FlagNeedsCsum) != 0 && !Negotiated(NetFeatures.Csum))
            return false;
        byte gso = header[NetHeader.GsoTypeOffset];
        if ((gso & NetHeader.GsoEcn) != 0 && !Negotiated(NetFeatures.HostEcn))
            return false;
        return (gso & ~NetHeader.GsoEcn) switch
        {
            NetHeader.GsoNone => true,
            NetHeader.GsoTcpV4 => Negotiated(NetFeatures.HostTso4 | NetFeatures.Csum),
            NetHeader.GsoTcpV6 => Negotiated(NetFeatures.HostTso6 | NetFeatures.Csum),
            _ => false,
        };
    }

    // ---- receive ----

    /// <summary>Moves frames from the backend into the receive queue. The driver is asked not to notify when it posts
    /// receive buffers (as QEMU does) except while the device waits for buffers: a driver that refills the ring frame
    /// by frame would otherwise exit to the VMM once per frame.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private void Receive(Virtqueue queue)
    {
        queue.SuppressNotifications(Memory);
        bool delivered = false;
        for (int frames = 0; !_backendBroken; frames++)
        {
            if (frames == RxBurst)
            {
                // Come back through the worker's poll (at once: the tap is still readable). That gives the transmit
                // queue its turn, and re-entering lets the runtime replace this loop's precompiled code with the
                // optimized code it compiles for hot methods (a running loop keeps the code it was entered with).
                WatchHostFd();
                break;
            }
            if (_rxPending == 0)
            {
                if (!ReceiveNext(queue, ref delivered))
                {
                    // Drained: sleep until the next frame. No spinning here: on a host with fewer cores than busy
                    // threads (the guest's vCPU, the sender, this worker) a spin takes the CPU the frames' producer
                    // needs, and measured no better than a wake-up per burst (bench/io/README.md).
                    WatchHostFd();
                    break;
                }
                if (_rxPending == 0)
                    continue; // delivered straight into a guest buffer, or dropped
            }
            if (!Deliver(queue, ref delivered))
                break; // no buffers: the driver's next RX kick brings us back
        }
        if (delivered)
            NotifyQueue(ReceiveQueue, queue);
    }

    /// <summary>Takes the next backend frame. When one receive chain is at hand (stashed, or popped now) the frame is
    /// read straight into it and completed there, with no staging copy; what does not fit lands in
    /// <see cref="_rxFrame"/> and the frame is left pending for <see cref="Deliver"/> (more mergeable buffers, or a
    /// drop). Without a chain it is read into <see cref="_rxFrame"/> and held. False when no frame was waiting.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private bool ReceiveNext(Virtqueue queue, ref bool delivered)
    {
        if (_stash.Count == 0 && queue.Pop(Memory) is { } chain)
            Stash(chain);
        if (_stash.Count != 1)
            return ReadFrame();
        int room = (int)Math.Min(_stash.CapacityAt(0), (ulong)NetHeader.MaxFrame);
        var pieces = new FramePieces();
        if (!_stash.TryGather(Memory, 0, room, ref pieces) || !pieces.TryAdd(_rxFrame.AsSpan(room)))
            return ReadFrame();
        int n;
        try
        {
            n = _backend.Receive(in pieces);
        }
        catch (SystemCallException e)
        {
            BackendFailed(e);
            return false;
        }
        if (n == 0)
            return false;
        if (Memory.IsLoggingWrites)
            _stash.MarkWritten(Memory, 0, Math.Min(n, room));
        if (n < NetHeader.Size + 14 || !_linkUp)
        {
            Interlocked.Increment(ref Metrics.RxDroppedValue); // the chain stays stashed for the next frame
            return true;
        }
        if (n > room)
        {
            _stash.ReadInto(Memory, 0, _rxFrame.AsSpan(0, room)); // the whole frame in one place for Deliver
            _rxPending = n;
            return true;
        }
        Span<byte> one = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(one, 1);
        _stash.WriteAt(Memory, 0, NetHeader.NumBuffersOffset, one);
        queue.AddUsed(Memory, _stash.HeadAt(0), (uint)n);
        Delivered(n, ref delivered);
        return true;
    }

    /// <summary>A frame of <paramref name="length"/> bytes (header included) went to the guest: the stash is spent.</summary>
    private void Delivered(int length, ref bool delivered)
    {
        _stash.Clear();
        delivered = true;
        Interlocked.Increment(ref Metrics.RxPacketsValue);
        Interlocked.Add(ref Metrics.RxBytesValue, length - NetHeader.Size);
    }

    /// <summary>Keeps a popped receive chain after checking it is one the device may fill.</summary>
    private void Stash(DescriptorChain chain)
    {
        if (chain.ReadableLength != 0)
            throw new VirtioProtocolException("receive buffer is device-readable");
        if (Negotiated(NetFeatures.MrgRxbuf) && chain.WritableLength < NetHeader.Size)
            throw new VirtioProtocolException($"receive buffer of {chain.WritableLength} bytes is shorter than the header");
        _stash.Add(chain);
    }

    /// <summary>Reads the next backend frame into <see cref="_rxFrame"/>; false when none is waiting.</summary>
    private bool ReadFrame()
    {
        int n;
        try
        {
            n = _backend.Receive(_rxFrame);
        }
        catch (SystemCallException e)
        {
            BackendFailed(e);
            return false;
        }
        if (n == 0)
            return false;
        if (n < NetHeader.Size + 14 || !_linkUp)
            Interlocked.Increment(ref Metrics.RxDroppedValue);
        else
            _rxPending = n;
        return true;
    }

    /// <summary>Places the pending frame in guest buffers. Returns false (frame kept) when the driver has not posted
    /// enough; true when the frame was delivered or dropped.</summary>
    private bool Deliver(Virtqueue queue, ref bool delivered)
    {
        bool merge = Negotiated(NetFeatures.MrgRxbuf);
        int need = _rxPending;
        while (merge ? _stash.Capacity < (ulong)need : _stash.Count == 0)
        {
            var chain = queue.Pop(Memory);
            if (chain is null)
            {
                queue.EnableNotifications(Memory); // starved: the driver's next refill must wake us
                chain = queue.Pop(Memory); // posted before it could see that
                if (chain is null)
                    return false;
                queue.SuppressNotifications(Memory);
            }
            Stash(chain);
        }
        _rxPending = 0;
        if (!merge && _stash.Capacity < (ulong)need)
        {
            // Too small for this frame; the chain stays stashed for a smaller one.
            Interlocked.Increment(ref Metrics.RxDroppedValue);
            return true;
        }
        var frame = _rxFrame.AsSpan(0, need);
        BinaryPrimitives.WriteUInt16LittleEndian(frame[NetHeader.NumBuffersOffset..], (ushort)_stash.Count);
        for (int i = 0; i < _stash.Count; i++)
        {
            int n = (int)Math.Min(_stash.CapacityAt(i), (ulong)frame.Length);
            _stash.Write(Memory, i, frame[..n]);
            frame = frame[n..];
            queue.AddUsed(Memory, _stash.HeadAt(i), (uint)n, publish: false);
        }
        queue.PublishUsed(Memory);
        Delivered(need, ref delivered);
        return true;
    }

    /// <summary>The host side failed (tap deleted...): not the guest's fault, so no NEEDS_RESET; the device just stops
    /// moving frames and says so once.</summary>
    private void BackendFailed(SystemCallException e)
    {
        if (_backendBroken)
            return;
        _backendBroken = true;
        Log.Write($"{Name}: backend {_backend.Name} failed: {e.Message}; no more frames");
    }

    // ---- lifecycle ----

    protected override void OnActivate()
    {
        _offloads = NetFeatures.OffloadsFor(DriverFeatures) & _backend.SupportedOffloads;
        _backend.SetOffloads(_offloads);
    }

    protected override void OnReset()
    {
        if (_rxPending != 0)
            Interlocked.Increment(ref Metrics.RxDroppedValue);
        _rxPending = 0;
        _stash.Clear();
        if (_offloads != NetOffloads.None)
        {
            _offloads = NetOffloads.None;
            _backend.SetOffloads(NetOffloads.None);
        }
    }

    private const byte StateVersion = 1;

    protected override void SaveDeviceState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        Span<byte> mac = stackalloc byte[6];
        Mac.CopyTo(mac);
        writer.WriteBytes(mac);
        writer.WriteBool(_linkUp);
        writer.WriteUInt32((uint)_offloads);
        writer.WriteBytes(_rxFrame.AsSpan(0, _rxPending));
        _stash.Save(writer);
    }

    protected override void RestoreDeviceState(StateReader reader)
    {
        reader.ExpectVersion(Name, StateVersion);
        byte[] mac = reader.ReadBytes();
        Span<byte> ours = stackalloc byte[6];
        Mac.CopyTo(ours);
        if (!ours.SequenceEqual(mac))
            throw new StateFormatException($"{Name}: state is for MAC {Convert.ToHexString(mac)}, this device has {Mac}");
        bool linkUp = reader.ReadBool();
        var offloads = (NetOffloads)reader.ReadUInt32();
        if ((offloads & ~_backend.SupportedOffloads) != 0)
            throw new StateFormatException($"{Name}: state has offloads {offloads} the backend {_backend.Name} does not support");
        byte[] pending = reader.ReadBytes();
        if (pending.Length != 0 && (pending.Length < NetHeader.Size + 14 || pending.Length > NetHeader.MaxFrame))
            throw new StateFormatException($"{Name}: pending receive frame of {pending.Length} bytes");
        _stash.Restore(reader, Memory, QueueSize, Name);
        pending.CopyTo(_rxFrame, 0);
        _rxPending = pending.Length;
        _linkUp = linkUp;
        _offloads = offloads;
        _backend.SetOffloads(offloads);
    }

    public override void Dispose()
    {
        base.Dispose();
        _backend.Dispose();
    }
}
