using Kiln.Devices;
using Kiln.Devices.State;
using Kiln.Interop;
using Kiln.Memory;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio;

/// <summary>A virtio device, independent of its transport: feature negotiation, device status, queues, the
/// DEVICE_NEEDS_RESET policy, and the worker thread that processes queues. Subclasses (block, rng, console) say what
/// a request means. Transports call the driver-facing members on vCPU threads; queue processing happens only on the
/// worker (or inline when no worker was started, which tests use).
/// One file over 400 lines on purpose: the status/feature/queue state machine is one unit of the virtio spec, and its save/restore must see all of it.</summary>
/// <remarks>Locks: <c>_processLock</c> is held while a queue is processed, <c>_lock</c> guards status, features and
/// queue configuration; always in that order. A device reset takes both, so it waits for at most the request in
/// flight. Interrupts are signalled with neither held by the caller's transport.</remarks>
public abstract class VirtioDevice : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Lock _processLock = new();
    private readonly Virtqueue[] _queues;
    private IVirtioTransport? _transport;
    private VirtioWorker? _worker;
    private byte _status;
    private long _protocolErrors;
    private bool _paused;

    protected VirtioDevice(GuestMemory memory, int queueCount, ushort maxQueueSize)
    {
        Memory = memory;
        _queues = new Virtqueue[queueCount];
        for (int i = 0; i < queueCount; i++)
            _queues[i] = new Virtqueue(maxQueueSize);
    }

    public GuestMemory Memory { get; }

    /// <summary>This device's guest-triggered log lines (a driver can break the protocol again after every reset).</summary>
    protected RateLimitedLog Log { get; } = new();

    public abstract VirtioDeviceType DeviceType { get; }

    /// <summary>A short name for logs and thread names (e.g. "virtio-blk").</summary>
    public abstract string Name { get; }

    public IReadOnlyList<Virtqueue> Queues => _queues;

    /// <summary>Everything the device offers: the common ring features plus its own.</summary>
    public ulong DeviceFeatures => VirtioFeatures.Common | DeviceSpecificFeatures;

    protected abstract ulong DeviceSpecificFeatures { get; }

    public ulong DriverFeatures { get; private set; }

    public byte Status => Volatile.Read(ref _status);

    public bool NeedsReset => (Status & VirtioStatus.DeviceNeedsReset) != 0;

    /// <summary>Bumped whenever the device changes its configuration space.</summary>
    public uint ConfigGeneration { get; private set; }

    /// <summary>How many times a driver broke the protocol (each one put the device into DEVICE_NEEDS_RESET).</summary>
    public long ProtocolErrors => Interlocked.Read(ref _protocolErrors);

    /// <summary>The eventfd that wakes the worker, for a KVM ioeventfd on the notify address; null before
    /// <see cref="StartWorker"/>.</summary>
    public FileDescriptor? NotifyEventFd => _worker?.EventFd;

    /// <summary>True when the driver has set DRIVER_OK and the device is healthy.</summary>
    protected bool IsActive
    {
        get
        {
            byte s = Status;
            return (s & VirtioStatus.DriverOk) != 0
                   && (s & (VirtioStatus.DeviceNeedsReset | VirtioStatus.Failed)) == 0;
        }
    }

    internal void AttachTransport(IVirtioTransport transport)
    {
        if (Interlocked.CompareExchange(ref _transport, transport, null) is not null)
            throw new InvalidOperationException($"{Name} is already attached to a transport");
    }

    /// <summary>Starts the worker thread; from then on notifications never process queues on the caller's thread.</summary>
    public void StartWorker()
    {
        if (_worker is null)
            _worker = new VirtioWorker(Name, ProcessQueues, HostReadableFd, e => FailOnFault("worker", e));
    }

    /// <summary>A host-side descriptor (a tap) whose readability the worker waits for itself, or null.</summary>
    protected virtual FileDescriptor? HostReadableFd => null;

    /// <summary>On the worker thread, after draining <see cref="HostReadableFd"/>: wake again when it is readable.</summary>
    protected void WatchHostFd() => _worker?.WatchHostFd();

    /// <summary>A queue notification (or host-side work such as console input): wakes the worker, or processes
    /// inline when no worker runs.</summary>
    public void Kick()
    {
        if (_worker is { } worker)
            worker.Wake();
        else
            ProcessQueues();
    }

    // ---- configuration space ----

    public abstract int ConfigSize { get; }

    /// <summary>Reads device configuration; the transport has checked that the access lies within
    /// <see cref="ConfigSize"/>.</summary>
    public abstract void ReadConfig(int offset, Span<byte> data);

    /// <summary>Writes device configuration (already bounds-checked); most fields are read-only.</summary>
    public virtual void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
    }

    /// <summary>Called by a subclass after it changed its configuration space.</summary>
    protected void ConfigChanged()
    {
        lock (_lock)
            ConfigGeneration++;
        _transport?.SignalConfigChange();
    }

    // ---- driver-facing operations (transports, vCPU threads) ----

    internal uint ReadDeviceFeatures(uint select) => select switch
    {
        0 => (uint)DeviceFeatures,
        1 => (uint)(DeviceFeatures >> 32),
        _ => 0,
    };

    internal uint ReadDriverFeatures(uint select) => select switch
    {
        0 => (uint)DriverFeatures,
        1 => (uint)(DriverFeatures >> 32),
        _ => 0,
    };

    /// <summary>Feature writes count only before FEATURES_OK; bits the device did not offer are kept so that
    /// FEATURES_OK can be refused.</summary>
    internal void WriteDriverFeatures(uint select, uint value)
    {
        lock (_lock)
        {
            if ((_status & VirtioStatus.FeaturesOk) != 0 || select > 1)
                return;
            int shift = (int)select * 32;
            DriverFeatures = (DriverFeatures & ~(0xFFFF_FFFFUL << shift)) | ((ulong)value << shift);
        }
    }

    /// <summary>A status write. Zero resets the device. Otherwise bits can only be added: FEATURES_OK is refused (left
    /// clear) for features the device did not offer or without VERSION_1, and DRIVER_OK validates every ready queue.</summary>
    internal void WriteStatus(byte value)
    {
        if (value == 0)
        {
            Reset();
            return;
        }
        string? failure = null;
        bool activated = false;
        lock (_lock)
        {
            byte old = _status;
            value = (byte)(value & ~VirtioStatus.DeviceNeedsReset);
            if ((old & ~value & ~VirtioStatus.DeviceNeedsReset) != 0)
                return; // the driver may not clear bits except by a reset
            byte added = (byte)(value & ~old);
            if ((added & VirtioStatus.FeaturesOk) != 0 && !FeaturesAcceptable())
                value = (byte)(value & ~VirtioStatus.FeaturesOk);
            if ((added & VirtioStatus.DriverOk) != 0)
            {
                if ((value & VirtioStatus.FeaturesOk) == 0)
                    value = (byte)(value & ~VirtioStatus.DriverOk);
                else
                {
                    failure = PrepareQueues();
                    activated = failure is null;
                }
            }
            _status = (byte)(value | (old & VirtioStatus.DeviceNeedsReset));
        }
        if (failure is not null)
            Fail(failure);
        else if (activated)
        {
            OnActivate();
            Kick();
        }
    }

    private bool FeaturesAcceptable() =>
        (DriverFeatures & ~DeviceFeatures) == 0 && (DriverFeatures & VirtioFeatures.Version1) != 0;

    private string? PrepareQueues()
    {
        foreach (var q in _queues)
        {
            q.EventIdx = (DriverFeatures & VirtioFeatures.RingEventIdx) != 0;
            q.IndirectDesc = (DriverFeatures & VirtioFeatures.RingIndirectDesc) != 0;
            if (q.Ready && q.Validate(Memory) is { } error)
                return error;
        }
        return null;
    }

    /// <summary>The queue whose configuration the driver may change now (selected index valid, queue not ready, no
    /// DRIVER_OK), or null.</summary>
    internal Virtqueue? ConfigurableQueue(uint index)
    {
        lock (_lock)
        {
            if (index >= _queues.Length || (_status & VirtioStatus.DriverOk) != 0 || _queues[index].Ready)
                return null;
            return _queues[index];
        }
    }

    internal Virtqueue? QueueAt(uint index) => index < _queues.Length ? _queues[index] : null;

    /// <summary>Enables a queue (QueueReady=1 / queue_enable=1); the rings are validated at DRIVER_OK.</summary>
    internal void SetQueueReady(uint index, bool ready)
    {
        lock (_lock)
        {
            if (index >= _queues.Length || (_status & VirtioStatus.DriverOk) != 0)
                return;
            _queues[index].Ready = ready;
        }
    }

    /// <summary>Device reset: status, features, every queue and the device's own state back to power-on.
    /// Waits for the request in flight on the worker.</summary>
    public void Reset()
    {
        lock (_processLock)
        {
            lock (_lock)
            {
                _status = 0;
                DriverFeatures = 0;
                foreach (var q in _queues)
                    q.Reset();
                OnReset();
            }
        }
    }

    /// <summary>Stops queue processing (waiting for the request in flight) so guest RAM and device state can be saved
    /// consistently; notifications that arrive meanwhile are handled by <see cref="Resume"/>.</summary>
    public void Pause()
    {
        lock (_processLock)
            _paused = true;
    }

    public void Resume()
    {
        lock (_processLock)
            _paused = false;
        Kick();
    }

    // ---- queue processing (worker thread) ----

    private void ProcessQueues()
    {
        lock (_processLock)
        {
            if (!IsActive || _paused)
                return;
            for (int i = 0; i < _queues.Length; i++)
            {
                var q = _queues[i];
                if (!q.Ready)
                    continue;
                try
                {
                    ProcessQueue(i, q);
                }
                catch (VirtioProtocolException e)
                {
                    Fail($"queue {i}: {e.Message}");
                    return;
                }
                catch (Exception e)
                {
                    FailOnFault($"queue {i}", e);
                    return;
                }
            }
        }
    }

    /// <summary>Consumes what the driver made available on one ready queue. Throw
    /// <see cref="VirtioProtocolException"/> for a malformed request; the device then needs a reset.</summary>
    protected abstract void ProcessQueue(int index, Virtqueue queue);

    /// <summary>Sends the used-buffer interrupt for a queue if the driver wants one.</summary>
    protected void NotifyQueue(int index, Virtqueue queue)
    {
        if (queue.NeedsNotification(Memory))
            _transport?.SignalQueue(index);
    }

    /// <summary>The driver broke the protocol: DEVICE_NEEDS_RESET, a configuration-change interrupt, one log line
    /// (rate-limited), and no more processing until the driver resets the device. Never throws: it is what the
    /// device's fault handlers call.</summary>
    protected void Fail(string reason)
    {
        lock (_lock)
        {
            if ((_status & VirtioStatus.DeviceNeedsReset) != 0)
                return;
            _status |= VirtioStatus.DeviceNeedsReset;
            ConfigGeneration++;
        }
        Interlocked.Increment(ref _protocolErrors);
        Log.Write($"{Name}: {reason}; device needs reset");
        try
        {
            _transport?.SignalConfigChange();
        }
        catch (Exception e)
        {
            // The interrupt layer contains its own failures; this is for any other transport or interrupt sink.
            Log.Write($"{Name}: configuration-change interrupt failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Device code threw where a guest reached it (a register handler, the worker): not a protocol error the
    /// device recognised, but handled the same way, so the device stops until the driver resets it.</summary>
    internal void FailOnFault(string where, Exception fault) =>
        Fail($"{where}: internal error: {fault.GetType().Name}: {fault.Message}");

    /// <summary>After DRIVER_OK, with negotiated features in <see cref="DriverFeatures"/>.</summary>
    protected virtual void OnActivate()
    {
    }

    /// <summary>On device reset, with the device's locks held: drop per-activation state.</summary>
    protected virtual void OnReset()
    {
    }

    protected bool Negotiated(ulong feature) => (DriverFeatures & feature) == feature;

    // ---- save / restore ----

    private const byte StateVersion = 1;

    internal void SaveState(StateWriter w)
    {
        lock (_processLock)
        {
            lock (_lock)
            {
                w.WriteByte(StateVersion);
                w.WriteUInt32((uint)DeviceType);
                w.WriteByte(_status);
                w.WriteUInt64(DriverFeatures);
                w.WriteUInt32(ConfigGeneration);
                w.WriteUInt32((uint)_queues.Length);
                foreach (var q in _queues)
                    q.SaveState(w);
                var device = new StateWriter();
                SaveDeviceState(device);
                w.WriteBytes(device.ToArray());
            }
        }
    }

    internal void RestoreState(StateReader r)
    {
        lock (_processLock)
        {
            lock (_lock)
            {
                r.ExpectVersion(Name, StateVersion);
                uint type = r.ReadUInt32();
                if (type != (uint)DeviceType)
                    throw new StateFormatException($"{Name}: state is for virtio device type {type}");
                byte status = r.ReadByte();
                ulong features = r.ReadUInt64();
                if ((features & ~DeviceFeatures) != 0)
                    throw new StateFormatException($"{Name}: state has features 0x{features:x} this device does not offer");
                uint generation = r.ReadUInt32();
                uint count = r.ReadUInt32();
                if (count != _queues.Length)
                    throw new StateFormatException($"{Name}: state has {count} queues, the device {_queues.Length}");
                foreach (var q in _queues)
                    q.RestoreState(r);
                RestoreDeviceState(new StateReader(r.ReadBytes()));
                _status = status;
                DriverFeatures = features;
                ConfigGeneration = generation;
            }
        }
        if (IsActive)
            Kick();
    }

    /// <summary>Device-specific state (pending console input, ...); the common state is saved by the base class.</summary>
    protected virtual void SaveDeviceState(StateWriter writer)
    {
    }

    protected virtual void RestoreDeviceState(StateReader reader)
    {
    }

    public virtual void Dispose()
    {
        _worker?.Dispose();
        GC.SuppressFinalize(this);
    }
}
