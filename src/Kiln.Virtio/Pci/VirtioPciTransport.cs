using System.Buffers.Binary;
using Kiln.Devices.State;

namespace Kiln.Virtio.Pci;

/// <summary>The virtio-pci modern transport (virtio 1.x section 4.1): a PCI function with vendor 0x1AF4, device
/// 0x1040+type, the virtio vendor capabilities (common, notify, ISR, device configuration) pointing into a 64-bit memory
/// BAR, and an MSI-X capability (one vector per queue plus one for configuration changes) whose table and PBA live in
/// the same BAR. Without MSI-X the function interrupts through INTx (pin A) on <see cref="Gsi"/>.
/// One file over 400 lines on purpose: the common, notify, ISR and device-config windows, MSI-X and the PCI capability list are one register file whose offsets must agree, and its saved state covers all of them.</summary>
public sealed class VirtioPciTransport : PciFunction, IVirtioTransport, IStateful, IDisposable
{
    private readonly IVirtioInterrupts _interrupts;
    private readonly MsixTable _msix;
    private uint _deviceFeatureSelect;
    private uint _driverFeatureSelect;
    private ushort _queueSelect;
    private ushort _configVector = Queue.Virtqueue.NoVector;
    private byte _isr;

    public VirtioPciTransport(VirtioDevice device, IVirtioInterrupts interrupts, uint gsi)
        : base(new PciConfigSpace(VirtioPciLayout.VendorId, (ushort)(VirtioPciLayout.DeviceIdBase + (uint)device.DeviceType),
            VirtioPciLayout.ClassCode(device.DeviceType), 1))
    {
        if ((ulong)device.ConfigSize > VirtioPciLayout.DeviceLength || device.Queues.Count > 1024)
            throw new ArgumentException($"{device.Name}: too large for virtio-pci");
        Device = device;
        _interrupts = interrupts;
        Gsi = gsi;
        _msix = new MsixTable(device.Queues.Count + 1);
        BuildConfigSpace();
        device.AttachTransport(this);
    }

    public VirtioDevice Device { get; }
    public uint Gsi { get; }

    /// <summary>The device number on bus 0, set by <see cref="PciHostBridge.Attach"/>.</summary>
    public int Slot { get; internal set; } = -1;

    public override string Name => Device.Name;
    public override int MemoryBar => VirtioPciLayout.Bar;
    public string StateId => $"virtio-pci@00:{Slot:x2}.0";

    public bool MsixEnabled
    {
        get
        {
            lock (ConfigLock)
                return (MsixControl & VirtioPciLayout.MsixEnable) != 0;
        }
    }

    /// <summary>Raised (on a vCPU thread, no lock held) when the notify addresses move: the guest reprogrammed the BAR
    /// or toggled memory decoding. A KVM ioeventfd binding should follow (see <see cref="Kvm.KvmIoeventfdBinding"/>).</summary>
    public event Action? NotifyRegionsChanged;

    /// <summary>Where the driver writes each queue's index (16-bit writes) while memory decoding is on; only
    /// addresses inside the bridge's window, the only place the BAR is decoded (the BAR is size-aligned, so these
    /// sums cannot wrap).</summary>
    public IReadOnlyList<(ulong Address, uint Length)> NotifyRegions
    {
        get
        {
            ulong bar;
            lock (ConfigLock)
            {
                if ((Config.CommandRegister & PciConfigSpace.CommandMemory) == 0)
                    return [];
                bar = Config.BarAddress(VirtioPciLayout.Bar);
            }
            return [.. Enumerable.Range(0, Device.Queues.Count)
                .Select(q => (bar + VirtioPciLayout.NotifyOffset + (ulong)q * VirtioPciLayout.NotifyOffMultiplier, 2u))
                .Where(r => Reachable(r.Item1, r.Item2))];
        }
    }

    public override void OnAccessFault(Exception fault) => Device.FailOnFault("virtio-pci register access", fault);

    private ushort MsixControl => Config.Get16(VirtioPciLayout.MsixCap + 2);

    private void BuildConfigSpace()
    {
        var c = Config;
        c.Set16(PciConfigSpace.SubsystemVendorId, VirtioPciLayout.VendorId);
        c.Set16(PciConfigSpace.SubsystemId, (ushort)(0x40 + (uint)Device.DeviceType));
        c.Set8(PciConfigSpace.InterruptLine, (byte)Gsi);
        c.Set8(PciConfigSpace.InterruptPin, 1);
        c.AddMemoryBar64(VirtioPciLayout.Bar, VirtioPciLayout.BarSize);
        AddVirtioCap(0, VirtioPciLayout.CommonCap, VirtioPciLayout.CfgTypeCommon, VirtioPciLayout.CommonOffset, VirtioPciLayout.CommonLength);
        AddVirtioCap(VirtioPciLayout.CommonCap, VirtioPciLayout.NotifyCap, VirtioPciLayout.CfgTypeNotify,
            VirtioPciLayout.NotifyOffset, (ulong)Device.Queues.Count * VirtioPciLayout.NotifyOffMultiplier);
        c.Set32(VirtioPciLayout.NotifyCap + 16, VirtioPciLayout.NotifyOffMultiplier);
        c.Set8(VirtioPciLayout.NotifyCap + 2, 20);
        AddVirtioCap(VirtioPciLayout.NotifyCap, VirtioPciLayout.IsrCap, VirtioPciLayout.CfgTypeIsr, VirtioPciLayout.IsrOffset, VirtioPciLayout.IsrLength);
        AddVirtioCap(VirtioPciLayout.IsrCap, VirtioPciLayout.DeviceCap, VirtioPciLayout.CfgTypeDevice,
            VirtioPciLayout.DeviceOffset, (ulong)Math.Max(Device.ConfigSize, 4));
        c.LinkCapability(VirtioPciLayout.DeviceCap, VirtioPciLayout.MsixCap, VirtioPciLayout.MsixCapId);
        c.Set16(VirtioPciLayout.MsixCap + 2, (ushort)(_msix.Count - 1));
        c.SetMask16(VirtioPciLayout.MsixCap + 2, VirtioPciLayout.MsixEnable | VirtioPciLayout.MsixFunctionMask);
        c.Set32(VirtioPciLayout.MsixCap + 4, (uint)VirtioPciLayout.MsixTableOffset | VirtioPciLayout.Bar);
        c.Set32(VirtioPciLayout.MsixCap + 8, (uint)VirtioPciLayout.MsixPbaOffset | VirtioPciLayout.Bar);
        // VIRTIO_PCI_CAP_PCI_CFG: a window into the BAR through configuration space (bar, offset, length, data).
        AddVirtioCap(VirtioPciLayout.MsixCap, VirtioPciLayout.PciCfgCap, VirtioPciLayout.CfgTypePci, 0, 0);
        c.Set8(VirtioPciLayout.PciCfgCap + 2, 20);
        c.SetMask8(VirtioPciLayout.PciCfgCap + 4, 0xFF);
        c.SetMask32(VirtioPciLayout.PciCfgCap + 8, 0xFFFF_FFFF);
        c.SetMask32(VirtioPciLayout.PciCfgCap + 12, 0xFFFF_FFFF);
    }

    private const int PciCfgData = VirtioPciLayout.PciCfgCap + 16;

    /// <summary>The BAR access a VIRTIO_PCI_CAP_PCI_CFG data access stands for, or null when the capability's
    /// fields do not describe a 1, 2 or 4-byte access to BAR 0.</summary>
    private (ulong Offset, int Length)? PciCfgWindow(int offset, int length)
    {
        if (offset + length <= PciCfgData || offset >= PciCfgData + 4)
            return null;
        lock (ConfigLock)
        {
            uint windowLength = Config.Get32(VirtioPciLayout.PciCfgCap + 12);
            if (offset != PciCfgData || Config.Get8(VirtioPciLayout.PciCfgCap + 4) != VirtioPciLayout.Bar
                || windowLength is not (1 or 2 or 4) || length < windowLength)
                return (ulong.MaxValue, 0);
            return (Config.Get32(VirtioPciLayout.PciCfgCap + 8), (int)windowLength);
        }
    }

    public override void ReadConfig(int offset, Span<byte> data)
    {
        if (PciCfgWindow(offset, data.Length) is { } window)
        {
            data.Clear();
            if (window.Length > 0)
                ReadBar(window.Offset, data[..window.Length]);
            return;
        }
        base.ReadConfig(offset, data);
    }

    private void AddVirtioCap(int previous, int at, byte type, ulong offset, ulong length)
    {
        Config.LinkCapability(previous, at, VirtioPciLayout.VendorCapId);
        Config.Set8(at + 2, 16);
        Config.Set8(at + 3, type);
        Config.Set8(at + 4, VirtioPciLayout.Bar);
        Config.Set32(at + 8, (uint)offset);
        Config.Set32(at + 12, (uint)length);
    }

    // ---- configuration space ----

    public override void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        if (PciCfgWindow(offset, data.Length) is { } window)
        {
            if (window.Length > 0)
                WriteBar(window.Offset, data[..window.Length]);
            return;
        }
        (ulong Bar, ushort Command) before, after;
        lock (ConfigLock)
        {
            before = (Config.BarAddress(VirtioPciLayout.Bar), Config.CommandRegister);
            Config.Write(offset, data);
            after = (Config.BarAddress(VirtioPciLayout.Bar), Config.CommandRegister);
            DeliverPendingLocked();
            if ((after.Command & PciConfigSpace.CommandIntxDisable) != 0 || MsixEnabledLocked)
                _isrLineWanted = false;
        }
        UpdateLine();
        bool decodingChanged = ((before.Command ^ after.Command) & PciConfigSpace.CommandMemory) != 0;
        if (decodingChanged || (before.Bar != after.Bar && (after.Command & PciConfigSpace.CommandMemory) != 0))
            NotifyRegionsChanged?.Invoke();
    }

    private bool MsixEnabledLocked => (MsixControl & VirtioPciLayout.MsixEnable) != 0;
    private bool _isrLineWanted;
    private bool _lineAsserted;

    // ---- BAR 0 ----

    public override void ReadBar(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (In(offset, data.Length, VirtioPciLayout.CommonOffset, 0x40))
            ReadCommon(offset - VirtioPciLayout.CommonOffset, data);
        else if (In(offset, data.Length, VirtioPciLayout.IsrOffset, VirtioPciLayout.IsrLength))
            data[0] = ReadAndClearIsr();
        else if (In(offset, data.Length, VirtioPciLayout.DeviceOffset, (ulong)Device.ConfigSize))
            Device.ReadConfig((int)(offset - VirtioPciLayout.DeviceOffset), data);
        else if (In(offset, data.Length, VirtioPciLayout.MsixTableOffset, (ulong)_msix.TableBytes))
        {
            lock (ConfigLock)
                _msix.ReadTable(offset - VirtioPciLayout.MsixTableOffset, data);
        }
        else if (In(offset, data.Length, VirtioPciLayout.MsixPbaOffset, (ulong)_msix.PbaBytes))
        {
            lock (ConfigLock)
                _msix.ReadPba(offset - VirtioPciLayout.MsixPbaOffset, data);
        }
    }

    public override void WriteBar(ulong offset, ReadOnlySpan<byte> data)
    {
        if (In(offset, data.Length, VirtioPciLayout.CommonOffset, 0x40))
            WriteCommon(offset - VirtioPciLayout.CommonOffset, data);
        else if (In(offset, data.Length, VirtioPciLayout.NotifyOffset, (ulong)Device.Queues.Count * VirtioPciLayout.NotifyOffMultiplier))
            Device.Kick(); // fallback when no ioeventfd is bound to the notify address
        else if (In(offset, data.Length, VirtioPciLayout.DeviceOffset, (ulong)Device.ConfigSize))
            Device.WriteConfig((int)(offset - VirtioPciLayout.DeviceOffset), data);
        else if (In(offset, data.Length, VirtioPciLayout.MsixTableOffset, (ulong)_msix.TableBytes))
        {
            lock (ConfigLock)
            {
                _msix.WriteTable(offset - VirtioPciLayout.MsixTableOffset, data);
                DeliverPendingLocked();
            }
        }
    }

    private static bool In(ulong offset, int length, ulong start, ulong size) =>
        offset >= start && offset - start < size && (ulong)length <= size - (offset - start);

    private void ReadCommon(ulong offset, Span<byte> data)
    {
        Span<byte> c = stackalloc byte[0x40];
        c.Clear();
        lock (ConfigLock)
        {
            var q = Device.QueueAt(_queueSelect);
            BinaryPrimitives.WriteUInt32LittleEndian(c, _deviceFeatureSelect);
            BinaryPrimitives.WriteUInt32LittleEndian(c[0x04..], Device.ReadDeviceFeatures(_deviceFeatureSelect));
            BinaryPrimitives.WriteUInt32LittleEndian(c[0x08..], _driverFeatureSelect);
            BinaryPrimitives.WriteUInt32LittleEndian(c[0x0C..], Device.ReadDriverFeatures(_driverFeatureSelect));
            BinaryPrimitives.WriteUInt16LittleEndian(c[0x10..], _configVector);
            BinaryPrimitives.WriteUInt16LittleEndian(c[0x12..], (ushort)Device.Queues.Count);
            c[0x14] = Device.Status;
            c[0x15] = (byte)Device.ConfigGeneration;
            BinaryPrimitives.WriteUInt16LittleEndian(c[0x16..], _queueSelect);
            if (q is not null)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(c[0x18..], q.Size);
                BinaryPrimitives.WriteUInt16LittleEndian(c[0x1A..], q.MsixVector);
                BinaryPrimitives.WriteUInt16LittleEndian(c[0x1C..], q.Ready ? (ushort)1 : (ushort)0);
                BinaryPrimitives.WriteUInt16LittleEndian(c[0x1E..], _queueSelect); // queue_notify_off
                BinaryPrimitives.WriteUInt64LittleEndian(c[0x20..], q.DescTable);
                BinaryPrimitives.WriteUInt64LittleEndian(c[0x28..], q.AvailRing);
                BinaryPrimitives.WriteUInt64LittleEndian(c[0x30..], q.UsedRing);
            }
        }
        c.Slice((int)offset, data.Length).CopyTo(data);
    }

    private void WriteCommon(ulong offset, ReadOnlySpan<byte> data)
    {
        ulong value = data.Length switch
        {
            1 => data[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(data),
            8 => BinaryPrimitives.ReadUInt64LittleEndian(data),
            _ => ulong.MaxValue,
        };
        if (value == ulong.MaxValue && data.Length != 8)
            return;
        if ((offset, data.Length) == (0x14, 1))
        {
            WriteStatus((byte)value);
            return;
        }
        lock (ConfigLock)
        {
            switch (offset, data.Length)
            {
                case (0x00, 4): _deviceFeatureSelect = (uint)value; return;
                case (0x08, 4): _driverFeatureSelect = (uint)value; return;
                case (0x0C, 4): Device.WriteDriverFeatures(_driverFeatureSelect, (uint)value); return;
                case (0x10, 2): _configVector = ValidVector((ushort)value); return;
                case (0x16, 2): _queueSelect = (ushort)value; return;
                case (0x1A, 2):
                    if (Device.QueueAt(_queueSelect) is { } vq)
                        vq.MsixVector = ValidVector((ushort)value);
                    return;
                case (0x1C, 2):
                    if (value == 1)
                        Device.SetQueueReady(_queueSelect, true);
                    return;
            }
            var q = Device.ConfigurableQueue(_queueSelect);
            if (q is null)
                return;
            switch (offset, data.Length)
            {
                case (0x18, 2): q.Size = (ushort)value; return; // validated at DRIVER_OK
                case (0x20, 8): q.DescTable = value; return;
                case (0x28, 8): q.AvailRing = value; return;
                case (0x30, 8): q.UsedRing = value; return;
                case (0x20, 4): q.DescTable = (q.DescTable & ~0xFFFF_FFFFUL) | value; return;
                case (0x24, 4): q.DescTable = (q.DescTable & 0xFFFF_FFFF) | (value << 32); return;
                case (0x28, 4): q.AvailRing = (q.AvailRing & ~0xFFFF_FFFFUL) | value; return;
                case (0x2C, 4): q.AvailRing = (q.AvailRing & 0xFFFF_FFFF) | (value << 32); return;
                case (0x30, 4): q.UsedRing = (q.UsedRing & ~0xFFFF_FFFFUL) | value; return;
                case (0x34, 4): q.UsedRing = (q.UsedRing & 0xFFFF_FFFF) | (value << 32); return;
            }
        }
    }

    /// <summary>A vector the table has, or NO_VECTOR (which the driver reads back as "refused").</summary>
    private ushort ValidVector(ushort vector) => vector < _msix.Count ? vector : Queue.Virtqueue.NoVector;

    private void WriteStatus(byte value)
    {
        Device.WriteStatus(value);
        if (value != 0)
            return;
        lock (ConfigLock)
        {
            _deviceFeatureSelect = _driverFeatureSelect = 0;
            _queueSelect = 0;
            _configVector = Queue.Virtqueue.NoVector;
            _isr = 0;
            _isrLineWanted = false;
        }
        UpdateLine();
    }

    private byte ReadAndClearIsr()
    {
        byte isr;
        lock (ConfigLock)
        {
            isr = _isr;
            _isr = 0;
            _isrLineWanted = false;
        }
        UpdateLine();
        return isr;
    }

    // ---- interrupts ----

    void IVirtioTransport.SignalQueue(int queueIndex) =>
        Signal(Device.QueueAt((uint)queueIndex)?.MsixVector ?? Queue.Virtqueue.NoVector, 1);

    void IVirtioTransport.SignalConfigChange()
    {
        ushort vector;
        lock (ConfigLock)
            vector = _configVector;
        Signal(vector, 2);
    }

    private void Signal(ushort vector, byte isrBit)
    {
        lock (ConfigLock)
        {
            if (MsixEnabledLocked)
            {
                if (vector < _msix.Count)
                {
                    _msix.SetPending(vector, true);
                    DeliverPendingLocked();
                }
                return;
            }
            _isr |= isrBit;
            if ((Config.CommandRegister & PciConfigSpace.CommandIntxDisable) == 0)
                _isrLineWanted = true;
        }
        UpdateLine();
    }

    /// <summary>Sends every pending vector that is no longer masked.</summary>
    private void DeliverPendingLocked()
    {
        if (!MsixEnabledLocked || (MsixControl & VirtioPciLayout.MsixFunctionMask) != 0)
            return;
        for (int v = 0; v < _msix.Count; v++)
        {
            if (!_msix.IsPending(v))
                continue;
            var (address, data, masked) = _msix.Entry(v);
            if (masked)
                continue;
            _msix.SetPending(v, false);
            _interrupts.SignalMsi(address, data);
        }
    }

    /// <summary>Drives INTx to match the ISR; only level changes reach the VMM.</summary>
    private void UpdateLine()
    {
        bool change;
        bool level;
        lock (ConfigLock)
        {
            level = _isrLineWanted;
            change = level != _lineAsserted;
            _lineAsserted = level;
        }
        if (change)
            _interrupts.SetLine(level);
    }

    // ---- save / restore ----

    private const byte StateVersion = 1;

    public void SaveState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        lock (ConfigLock)
        {
            writer.WriteBytes(Config.ToArray());
            _msix.Save(writer);
            writer.WriteUInt32(_deviceFeatureSelect);
            writer.WriteUInt32(_driverFeatureSelect);
            writer.WriteUInt16(_queueSelect);
            writer.WriteUInt16(_configVector);
            writer.WriteByte(_isr);
            writer.WriteBool(_isrLineWanted);
        }
        Device.SaveState(writer);
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        lock (ConfigLock)
        {
            if (!Config.TryRestore(reader.ReadBytes()))
                throw new StateFormatException($"{StateId}: configuration space is from a different device");
            _msix.Restore(reader);
            _deviceFeatureSelect = reader.ReadUInt32();
            _driverFeatureSelect = reader.ReadUInt32();
            _queueSelect = reader.ReadUInt16();
            _configVector = reader.ReadUInt16();
            _isr = reader.ReadByte();
            _isrLineWanted = reader.ReadBool();
            if (_configVector != Queue.Virtqueue.NoVector && _configVector >= _msix.Count || _isr > 3)
                throw new StateFormatException($"{StateId}: bad interrupt state");
        }
        Device.RestoreState(reader);
        UpdateLine();
        NotifyRegionsChanged?.Invoke();
    }

    public void Dispose() => Device.Dispose();
}
