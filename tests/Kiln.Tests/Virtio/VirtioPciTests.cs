using System.Buffers.Binary;
using Kiln.Devices.Bus;
using Kiln.Devices.Legacy;
using Kiln.Memory;
using Kiln.Tests.Devices;
using Kiln.Virtio;
using Kiln.Virtio.Pci;
using Kiln.Virtio.Rng;

namespace Kiln.Tests.Virtio;

public sealed class VirtioPciTests : IDisposable
{
    private readonly GuestMemory _memory = VirtioTest.CreateMemory();
    private readonly IoBus _pio = new("port I/O");
    private readonly IoBus _mmio = new("MMIO");
    private readonly FakeMachineControl _machine = new();
    private readonly FakeVirtioInterrupts _irq = new();
    private readonly PciHostBridge _bridge = new();
    private readonly VirtioPciTransport _rng;

    public VirtioPciTests()
    {
        _pio.Register(ResetControl.Port, ResetControl.PortCount, new ResetControl(_machine), "reset control");
        _bridge.RegisterPorts(_pio, _mmio);
        _rng = new VirtioPciTransport(new VirtioRng(_memory), _irq, 10);
        Assert.Equal(1, _bridge.Attach(_rng));
    }

    public void Dispose()
    {
        _rng.Dispose();
        _memory.Dispose();
    }

    private uint ConfigRead(int slot, int offset, int width = 4)
    {
        Out32(0xCF8, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        Span<byte> b = stackalloc byte[4];
        b.Clear();
        _pio.Read(0xCFC + (ulong)(offset & 3), b[..width]);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private void ConfigWrite(int slot, int offset, uint value, int width = 4)
    {
        Out32(0xCF8, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        _pio.Write(0xCFC + (ulong)(offset & 3), b[..width]);
    }

    private void Out32(ulong port, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        _pio.Write(port, b);
    }

    private ulong Mmio(ulong address, int width)
    {
        Span<byte> b = stackalloc byte[8];
        b.Clear();
        _mmio.Read(address, b[..width]);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    private void MmioWrite(ulong address, ulong value, int width)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        _mmio.Write(address, b[..width]);
    }

    /// <summary>A guest-style walk of the capability list: (id, offset) pairs, bounded so a bad list cannot hang.</summary>
    private List<(byte Id, int Offset)> Capabilities(int slot)
    {
        var caps = new List<(byte, int)>();
        Assert.NotEqual(0u, ConfigRead(slot, 0x06, 2) & 0x10);
        int at = (int)(ConfigRead(slot, 0x34, 1) & 0xFC);
        while (at != 0 && caps.Count < 48)
        {
            caps.Add(((byte)ConfigRead(slot, at, 1), at));
            at = (int)(ConfigRead(slot, at + 1, 1) & 0xFC);
        }
        return caps;
    }

    private Dictionary<byte, (int Bar, uint Offset, uint Length, int CapAt)> VirtioCaps(int slot)
    {
        var result = new Dictionary<byte, (int, uint, uint, int)>();
        foreach (var (id, at) in Capabilities(slot).Where(c => c.Id == 0x09))
        {
            byte type = (byte)ConfigRead(slot, at + 3, 1);
            result[type] = ((int)ConfigRead(slot, at + 4, 1), ConfigRead(slot, at + 8), ConfigRead(slot, at + 12), at);
        }
        return result;
    }

    private ulong Bar0 => (ConfigRead(1, 0x10) & ~0xFu) | ((ulong)ConfigRead(1, 0x14) << 32);

    [Fact]
    public void ResetControlStillOwnsPort0xCF9()
    {
        _pio.Write(0xCF9, [0x06]);
        Assert.Single(_machine.Resets);
        // Linux's type-1 probe: a byte at 0xCFB is dropped, a dword at 0xCF8 reads back.
        _pio.Write(0xCFB, [0x01]);
        Out32(0xCF8, 0x8000_0000);
        Span<byte> b = stackalloc byte[4];
        _pio.Read(0xCF8, b);
        Assert.Equal(0x8000_0000u, BinaryPrimitives.ReadUInt32LittleEndian(b));
    }

    [Fact]
    public void IdentifiesHostBridgeAndVirtioFunction()
    {
        Assert.Equal(0x0D57_8086u, ConfigRead(0, 0));
        Assert.Equal(0x1044_1AF4u, ConfigRead(1, 0)); // virtio-rng: 0x1040 + 4
        Assert.Equal(1u, ConfigRead(1, 0x08, 1)); // revision 1: modern
        Assert.Equal(0x0044u, ConfigRead(1, 0x2E, 2));
        Assert.Equal(0xFFFF_FFFFu, ConfigRead(2, 0)); // empty slot
        Assert.Equal(10u, ConfigRead(1, 0x3C, 1));
        Assert.Equal(1u, ConfigRead(1, 0x3D, 1));
    }

    [Fact]
    public void CapabilityListDescribesTheVirtioStructures()
    {
        var caps = VirtioCaps(1);
        Assert.Equal(0, caps[1].Bar);
        Assert.Equal(0x38u, caps[1].Length);
        Assert.Equal(0x1000u, caps[3].Offset);
        Assert.Equal(0x3000u, caps[2].Offset);
        Assert.Equal(4u, ConfigRead(1, caps[2].CapAt + 16)); // notify_off_multiplier
        Assert.Equal(20u, ConfigRead(1, caps[2].CapAt + 2, 1));
        Assert.True(caps.ContainsKey(4));
        var msix = Capabilities(1).Single(c => c.Id == 0x11).Offset;
        Assert.Equal(1u, ConfigRead(1, msix + 2, 2) & 0x7FF); // 2 vectors: queue + config
        Assert.Equal(0x4000u, ConfigRead(1, msix + 4));
        Assert.Equal(0x5000u, ConfigRead(1, msix + 8));
    }

    [Fact]
    public void PciCfgCapabilityIsAWindowIntoTheBar()
    {
        int at = VirtioCaps(1)[5].CapAt;
        ConfigWrite(1, at + 4, 0, 1);     // bar 0
        ConfigWrite(1, at + 8, 0x12);     // common cfg num_queues
        ConfigWrite(1, at + 12, 2);       // 2 bytes
        Assert.Equal(1u, ConfigRead(1, at + 16) & 0xFFFF);
        ConfigWrite(1, at + 8, 0x16);     // queue_select, written through the window
        ConfigWrite(1, at + 16, 5, 2);
        ConfigWrite(1, at + 8, 0x16);
        Assert.Equal(5u, ConfigRead(1, at + 16) & 0xFFFF);
    }

    [Fact]
    public void BarSizingAndReprogramming()
    {
        ulong assigned = Bar0;
        Assert.Equal(PciHostBridge.DefaultWindowBase, assigned);
        Assert.Equal(0x4u, ConfigRead(1, 0x10) & 0xF); // 64-bit memory
        ConfigWrite(1, 0x10, 0xFFFF_FFFF);
        ConfigWrite(1, 0x14, 0xFFFF_FFFF);
        uint low = ConfigRead(1, 0x10), high = ConfigRead(1, 0x14);
        ulong mask = ((ulong)high << 32) | (low & ~0xFu);
        Assert.Equal(0x8000UL, ~mask + 1);
        // Move it and enable memory decoding; the window follows.
        int moved = 0;
        _rng.NotifyRegionsChanged += () => moved++;
        ConfigWrite(1, 0x10, 0xE010_0000);
        ConfigWrite(1, 0x14, 0);
        Assert.Equal(0xFFFFUL, Mmio(0xE010_0000 + 0x12, 2));
        ConfigWrite(1, 0x04, 0x0006, 2);
        Assert.Equal(1UL, Mmio(0xE010_0000 + 0x12, 2)); // num_queues
        Assert.Equal(0xFFFFUL, Mmio(assigned + 0x12, 2));
        Assert.True(moved > 0);
        Assert.Equal(0xE010_3000UL, _rng.NotifyRegions[0].Address);
    }

    private ulong EnableDecoding()
    {
        ConfigWrite(1, 0x04, 0x0006, 2);
        return Bar0;
    }

    /// <summary>Memory decoding and MSI-X on; returns BAR 0.</summary>
    private ulong EnableMsix()
    {
        ulong bar = EnableDecoding();
        var msixCap = Capabilities(1).Single(c => c.Id == 0x11).Offset;
        ConfigWrite(1, msixCap + 2, 0x8000, 2);
        return bar;
    }

    /// <summary>One MSI-X table entry; unmasked unless <paramref name="masked"/> (the reset state).</summary>
    private void SetVector(ulong bar, int vector, uint address, uint data, bool masked = false)
    {
        ulong entry = bar + 0x4000 + 16UL * (ulong)vector;
        MmioWrite(entry, address, 4);
        MmioWrite(entry + 4, 0, 4);
        MmioWrite(entry + 8, data, 4);
        if (!masked)
            MmioWrite(entry + 12, 0, 4);
    }

    /// <summary>Linux's modern probe: status, features through the common structure, one queue, DRIVER_OK.</summary>
    private DriverQueue BringUp(ulong bar, bool msix)
    {
        MmioWrite(bar + 0x14, 3, 1);
        MmioWrite(bar + 0x00, 1, 4);
        Assert.Equal(1UL, Mmio(bar + 0x04, 4));
        MmioWrite(bar + 0x08, 1, 4);
        MmioWrite(bar + 0x0C, 1, 4);
        MmioWrite(bar + 0x14, 11, 1);
        Assert.Equal(11UL, Mmio(bar + 0x14, 1));
        if (msix)
        {
            MmioWrite(bar + 0x10, 1, 2);
            Assert.Equal(1UL, Mmio(bar + 0x10, 2));
        }
        MmioWrite(bar + 0x16, 0, 2);
        Assert.Equal(256UL, Mmio(bar + 0x18, 2));
        MmioWrite(bar + 0x18, 16, 2);
        var q = new DriverQueue(_memory, 16, 0x10000, 0x14000, 0x18000);
        MmioWrite(bar + 0x20, q.Desc, 4);
        MmioWrite(bar + 0x24, 0, 4);
        MmioWrite(bar + 0x28, q.Avail, 8);
        MmioWrite(bar + 0x30, q.Used, 8);
        if (msix)
        {
            MmioWrite(bar + 0x1A, 0, 2);
            Assert.Equal(0UL, Mmio(bar + 0x1A, 2));
            MmioWrite(bar + 0x1A, 7, 2); // no such vector: refused
            Assert.Equal(0xFFFFUL, Mmio(bar + 0x1A, 2));
            MmioWrite(bar + 0x1A, 0, 2);
        }
        MmioWrite(bar + 0x1C, 1, 2);
        MmioWrite(bar + 0x14, 15, 1);
        Assert.Equal(15UL, Mmio(bar + 0x14, 1));
        Assert.Equal(0x10000UL, Mmio(bar + 0x20, 8));
        return q;
    }

    private void PostEntropyRequest(DriverQueue q, ulong bar)
    {
        q.SetDescriptor(0, 0x40000, 64, 2);
        q.Publish(0);
        MmioWrite(bar + 0x3000, 0, 2);
    }

    [Fact]
    public void MsixDeliversTheQueueVector()
    {
        ulong bar = EnableMsix();
        SetVector(bar, 0, 0xFEE0_0000, 0x41);
        Assert.Equal(0xFEE0_0000UL, Mmio(bar + 0x4000, 4));
        var q = BringUp(bar, msix: true);
        PostEntropyRequest(q, bar);
        Assert.Equal(1, q.UsedIdx);
        Assert.Equal((0u, 64u), q.UsedElement(0));
        Assert.Equal([(0xFEE0_0000UL, 0x41u)], _irq.Msis);
        Assert.Equal(0, _irq.LineRaises);
    }

    [Fact]
    public void MaskedVectorIsPendingUntilUnmasked()
    {
        ulong bar = EnableMsix();
        SetVector(bar, 0, 0xFEE0_0000, 0x42, masked: true);
        var q = BringUp(bar, msix: true);
        PostEntropyRequest(q, bar);
        Assert.Empty(_irq.Msis);
        Assert.Equal(1UL, Mmio(bar + 0x5000, 4) & 1); // PBA
        MmioWrite(bar + 0x400C, 0, 4);
        Assert.Single(_irq.Msis);
        Assert.Equal(0UL, Mmio(bar + 0x5000, 4) & 1);
    }

    [Fact]
    public void IntxFallbackUsesTheIsr()
    {
        ulong bar = EnableDecoding();
        var q = BringUp(bar, msix: false);
        PostEntropyRequest(q, bar);
        Assert.True(_irq.Line);
        Assert.Equal(1UL, Mmio(bar + 0x1000, 1));
        Assert.False(_irq.Line);
        Assert.Equal(0UL, Mmio(bar + 0x1000, 1)); // read-to-clear
    }

    [Fact]
    public void ProtocolErrorRaisesConfigInterruptOnItsVector()
    {
        ulong bar = EnableMsix();
        SetVector(bar, 1, 0xFEE0_0000, 0x99); // the config vector
        var q = BringUp(bar, msix: true);
        q.SetDescriptor(0, 0x40000, 64, 0); // device-readable: wrong for entropy
        q.Publish(0);
        MmioWrite(bar + 0x3000, 0, 2);
        Assert.Equal(VirtioStatus.DeviceNeedsReset, (byte)(Mmio(bar + 0x14, 1) & 0x40));
        Assert.Equal([(0xFEE0_0000UL, 0x99u)], _irq.Msis);
    }

    [Fact]
    public void InterruptsThatCannotBeSentCostTheDeviceNotTheVcpu()
    {
        // A used-buffer MSI that fails while the queue is processed (inline here: no worker), and the
        // configuration-change MSI of the resulting NEEDS_RESET failing too: nothing escapes the notify write.
        ulong bar = EnableMsix();
        SetVector(bar, 0, 0xFEE0_F000, 0x31);
        SetVector(bar, 1, 0xFEE0_F000, 0x31);
        var q = BringUp(bar, msix: true);
        _irq.Throw = true;
        PostEntropyRequest(q, bar);
        Assert.Equal(1, q.UsedIdx); // the request itself completed
        Assert.Equal(VirtioStatus.DeviceNeedsReset, (byte)(Mmio(bar + 0x14, 1) & 0x40));
        Assert.Equal(0, _mmio.DeviceFaults);
    }

    [Fact]
    public void AnMsiFailingOnATableWriteIsContainedByTheBus()
    {
        // Unmasking a pending vector sends it from the vCPU's MSI-X table write: the bus drops the faulting access
        // and the function's device needs a reset.
        ulong bar = EnableMsix();
        SetVector(bar, 0, 0xFEE0_F000, 0x31, masked: true);
        var q = BringUp(bar, msix: true);
        PostEntropyRequest(q, bar);
        Assert.Equal(1UL, Mmio(bar + 0x5000, 4) & 1); // pending
        _irq.Throw = true;
        MmioWrite(bar + 0x400C, 0, 4);
        Assert.Equal(1, _mmio.DeviceFaults);
        Assert.True(_rng.Device.NeedsReset);
        _irq.Throw = false;
        MmioWrite(bar + 0x14, 0, 1); // a reset brings it back
        Assert.False(_rng.Device.NeedsReset);
    }

    [Fact]
    public void NotifyRegionsStayInsideTheBridgeWindow()
    {
        ulong bar = EnableDecoding();
        Assert.Equal(bar + 0x3000, _rng.NotifyRegions.Single().Address);
        ConfigWrite(1, 0x10, 0xF000_0000); // above the window: not decoded, so no ioeventfd either
        Assert.Empty(_rng.NotifyRegions);
        ConfigWrite(1, 0x10, (uint)bar);
        Assert.Single(_rng.NotifyRegions);
    }

    [Fact]
    public void StateRoundTrip()
    {
        ulong bar = EnableDecoding();
        var msixCap = Capabilities(1).Single(c => c.Id == 0x11).Offset;
        ConfigWrite(1, msixCap + 2, 0x8000, 2);
        MmioWrite(bar + 0x4000, 0xFEE0_0000, 4);
        MmioWrite(bar + 0x4008, 0x41, 4);
        MmioWrite(bar + 0x400C, 0, 4);
        var q = BringUp(bar, msix: true);
        PostEntropyRequest(q, bar);
        byte[] saved = Port.Save(_rng);

        var irq = new FakeVirtioInterrupts();
        using var restored = new VirtioPciTransport(new VirtioRng(_memory), irq, 10);
        var bridge = new PciHostBridge();
        bridge.Attach(restored);
        Port.Restore(restored, saved);
        Assert.Equal(saved, Port.Save(restored));
        Assert.True(restored.MsixEnabled);
        Assert.Equal(15, restored.Device.Status);
        Assert.Equal(1, restored.Device.Queues[0].LastAvailIdx);
        // The restored device carries on where the old one stopped.
        q.Publish(0);
        restored.WriteBar(0x3000, [0, 0]);
        Assert.Equal(2, q.UsedIdx);
        Assert.Equal([(0xFEE0_0000UL, 0x41u)], irq.Msis);
    }

    [Fact]
    public void RestoreRefusesAnotherDeviceType()
    {
        byte[] saved = Port.Save(_rng);
        using var other = new VirtioPciTransport(new VirtioBlockStub(_memory), new FakeVirtioInterrupts(), 10);
        Assert.ThrowsAny<Exception>(() => Port.Restore(other, saved));
    }

    private sealed class VirtioBlockStub(GuestMemory memory) : VirtioDevice(memory, 1, 16)
    {
        public override VirtioDeviceType DeviceType => VirtioDeviceType.Block;
        public override string Name => "stub";
        protected override ulong DeviceSpecificFeatures => 0;
        public override int ConfigSize => 0;
        public override void ReadConfig(int offset, Span<byte> data) => data.Clear();
        protected override void ProcessQueue(int index, Kiln.Virtio.Queue.Virtqueue queue) { }
    }
}
