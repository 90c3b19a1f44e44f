using System.Buffers.Binary;
using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Virtio.Mmio;

/// <summary>The virtio-mmio transport (version 2): a 0x200-byte window of 32-bit registers followed by the device's
/// configuration space. Register it on the MMIO bus at <see cref="BaseAddress"/> with length <see cref="WindowSize"/>
/// and announce it on the kernel command line with <see cref="KernelCommandLineArgument"/>.</summary>
public sealed class VirtioMmioTransport : IBusDevice, IAccessFaultHandler, IStateful, IVirtioTransport, IDisposable
{
    /// <summary>Registers (0x100) plus configuration space (up to 0x100).</summary>
    public const ulong WindowSize = 0x200;

    private readonly Lock _lock = new();
    private readonly IVirtioInterrupts _interrupts;
    private uint _deviceFeaturesSel;
    private uint _driverFeaturesSel;
    private uint _queueSel;
    private uint _interruptStatus;
    private long _unexpectedAccesses;

    public VirtioMmioTransport(VirtioDevice device, IVirtioInterrupts interrupts, ulong baseAddress, uint irq)
    {
        if (device.ConfigSize > (int)(WindowSize - MmioRegisters.Config))
            throw new ArgumentException($"{device.Name}: configuration space too large for virtio-mmio");
        Device = device;
        _interrupts = interrupts;
        BaseAddress = baseAddress;
        Irq = irq;
        device.AttachTransport(this);
    }

    public VirtioDevice Device { get; }
    public ulong BaseAddress { get; }
    public uint Irq { get; }

    /// <summary>The guest-physical address a KVM ioeventfd should watch (4 bytes, any value) to wake the worker.</summary>
    public ulong NotifyAddress => BaseAddress + MmioRegisters.QueueNotify;

    /// <summary><c>virtio_mmio.device=512@0xd0000000:5</c> for the kernel command line.</summary>
    public string KernelCommandLineArgument => $"virtio_mmio.device={WindowSize}@0x{BaseAddress:x}:{Irq}";

    public string StateId => $"virtio-mmio@{BaseAddress:x}";

    /// <summary>Accesses of the wrong width or to undefined registers (reads gave zero, writes were dropped).</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    public uint InterruptStatus
    {
        get
        {
            lock (_lock)
                return _interruptStatus;
        }
    }

    public void Read(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (offset >= MmioRegisters.Config)
        {
            ReadConfig(offset - MmioRegisters.Config, data);
            return;
        }
        if (data.Length != 4 || offset % 4 != 0)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(data, ReadRegister(offset));
    }

    private void ReadConfig(ulong offset, Span<byte> data)
    {
        if (offset + (ulong)data.Length > (ulong)Device.ConfigSize)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        Device.ReadConfig((int)offset, data);
    }

    private uint ReadRegister(ulong offset)
    {
        lock (_lock)
        {
            var q = Device.QueueAt(_queueSel);
            switch (offset)
            {
                case MmioRegisters.MagicValue: return MmioRegisters.Magic;
                case MmioRegisters.Version: return MmioRegisters.VersionModern;
                case MmioRegisters.DeviceId: return (uint)Device.DeviceType;
                case MmioRegisters.VendorId: return MmioRegisters.KilnVendor;
                case MmioRegisters.DeviceFeatures: return Device.ReadDeviceFeatures(_deviceFeaturesSel);
                case MmioRegisters.QueueNumMax: return q?.MaxSize ?? 0u;
                case MmioRegisters.QueueNum: return q?.Size ?? 0u;
                case MmioRegisters.QueueReady: return q is { Ready: true } ? 1u : 0u;
                case MmioRegisters.InterruptStatus: return _interruptStatus;
                case MmioRegisters.Status: return Device.Status;
                case MmioRegisters.QueueDescLow: return (uint)(q?.DescTable ?? 0);
                case MmioRegisters.QueueDescHigh: return (uint)((q?.DescTable ?? 0) >> 32);
                case MmioRegisters.QueueDriverLow: return (uint)(q?.AvailRing ?? 0);
                case MmioRegisters.QueueDriverHigh: return (uint)((q?.AvailRing ?? 0) >> 32);
                case MmioRegisters.QueueDeviceLow: return (uint)(q?.UsedRing ?? 0);
                case MmioRegisters.QueueDeviceHigh: return (uint)((q?.UsedRing ?? 0) >> 32);
                case MmioRegisters.ShmLenLow or MmioRegisters.ShmLenHigh: return 0xFFFF_FFFF; // no shared memory
                case MmioRegisters.ConfigGeneration: return Device.ConfigGeneration;
                default:
                    Interlocked.Increment(ref _unexpectedAccesses);
                    return 0;
            }
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= MmioRegisters.Config)
        {
            ulong configOffset = offset - MmioRegisters.Config;
            if (configOffset + (ulong)data.Length > (ulong)Device.ConfigSize)
                Interlocked.Increment(ref _unexpectedAccesses);
            else
                Device.WriteConfig((int)configOffset, data);
            return;
        }
        if (data.Length != 4 || offset % 4 != 0)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        WriteRegister(offset, BinaryPrimitives.ReadUInt32LittleEndian(data));
    }

    private void WriteRegister(ulong offset, uint value)
    {
        switch (offset)
        {
            case MmioRegisters.QueueNotify:
                Device.Kick(); // fallback when no ioeventfd is bound to NotifyAddress
                return;
            case MmioRegisters.Status:
                WriteStatus(value);
                return;
            case MmioRegisters.InterruptAck:
                Acknowledge(value);
                return;
        }
        lock (_lock)
        {
            switch (offset)
            {
                case MmioRegisters.DeviceFeaturesSel: _deviceFeaturesSel = value; return;
                case MmioRegisters.DriverFeaturesSel: _driverFeaturesSel = value; return;
                case MmioRegisters.DriverFeatures: Device.WriteDriverFeatures(_driverFeaturesSel, value); return;
                case MmioRegisters.QueueSel: _queueSel = value; return;
                case MmioRegisters.QueueReady: Device.SetQueueReady(_queueSel, value == 1); return;
                case MmioRegisters.ShmSel: return;
            }
            var q = Device.ConfigurableQueue(_queueSel);
            if (q is null)
            {
                Interlocked.Increment(ref _unexpectedAccesses);
                return;
            }
            switch (offset)
            {
                case MmioRegisters.QueueNum: q.Size = (ushort)Math.Min(value, ushort.MaxValue); return; // checked at DRIVER_OK
                case MmioRegisters.QueueDescLow: q.DescTable = SetLow(q.DescTable, value); return;
                case MmioRegisters.QueueDescHigh: q.DescTable = SetHigh(q.DescTable, value); return;
                case MmioRegisters.QueueDriverLow: q.AvailRing = SetLow(q.AvailRing, value); return;
                case MmioRegisters.QueueDriverHigh: q.AvailRing = SetHigh(q.AvailRing, value); return;
                case MmioRegisters.QueueDeviceLow: q.UsedRing = SetLow(q.UsedRing, value); return;
                case MmioRegisters.QueueDeviceHigh: q.UsedRing = SetHigh(q.UsedRing, value); return;
                default: Interlocked.Increment(ref _unexpectedAccesses); return;
            }
        }
    }

    private static ulong SetLow(ulong old, uint value) => (old & 0xFFFF_FFFF_0000_0000) | value;
    private static ulong SetHigh(ulong old, uint value) => (old & 0xFFFF_FFFF) | ((ulong)value << 32);

    private void WriteStatus(uint value)
    {
        if (value > 0xFF)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        Device.WriteStatus((byte)value);
        if (value == 0)
        {
            lock (_lock)
            {
                _deviceFeaturesSel = _driverFeaturesSel = _queueSel = 0;
                _interruptStatus = 0;
            }
            _interrupts.SetLine(false);
        }
    }

    private void Acknowledge(uint bits)
    {
        bool lower;
        lock (_lock)
        {
            _interruptStatus &= ~bits;
            lower = _interruptStatus == 0;
        }
        if (lower)
            _interrupts.SetLine(false);
    }

    void IVirtioTransport.SignalQueue(int queueIndex) => Raise(MmioRegisters.InterruptUsedBuffer);

    void IVirtioTransport.SignalConfigChange() => Raise(MmioRegisters.InterruptConfigChange);

    private void Raise(uint bit)
    {
        lock (_lock)
            _interruptStatus |= bit;
        _interrupts.SetLine(true);
    }

    private const byte StateVersion = 1;

    public void SaveState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        lock (_lock)
        {
            writer.WriteUInt32(_deviceFeaturesSel);
            writer.WriteUInt32(_driverFeaturesSel);
            writer.WriteUInt32(_queueSel);
            writer.WriteUInt32(_interruptStatus);
        }
        Device.SaveState(writer);
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        uint status;
        lock (_lock)
        {
            _deviceFeaturesSel = reader.ReadUInt32();
            _driverFeaturesSel = reader.ReadUInt32();
            _queueSel = reader.ReadUInt32();
            status = reader.ReadUInt32();
            if ((status & ~3u) != 0)
                throw new StateFormatException($"{StateId}: bad interrupt status 0x{status:x}");
            _interruptStatus = status;
        }
        Device.RestoreState(reader);
        _interrupts.SetLine(status != 0);
    }

    public void OnAccessFault(ulong offset, Exception fault) => Device.FailOnFault("virtio-mmio register access", fault);

    public void Dispose() => Device.Dispose();
}
