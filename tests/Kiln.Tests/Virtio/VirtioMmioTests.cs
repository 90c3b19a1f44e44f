using Kiln.Devices.Bus;
using Kiln.Virtio;
using Kiln.Virtio.Block;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Rng;

namespace Kiln.Tests.Virtio;

public sealed class VirtioMmioTests
{
    private static (VirtioMmioTransport T, FakeVirtioInterrupts Irq, Kiln.Memory.GuestMemory Memory) Create()
    {
        var memory = VirtioTest.CreateMemory();
        var irq = new FakeVirtioInterrupts();
        return (new VirtioMmioTransport(new VirtioRng(memory), irq, 0xD000_1000, 6), irq, memory);
    }

    [Fact]
    public void IdentificationRegisters()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        Assert.Equal(0x74726976u, t.Read32(0x000));
        Assert.Equal(2u, t.Read32(0x004));
        Assert.Equal(4u, t.Read32(0x008));
        Assert.NotEqual(0u, t.Read32(0x00C));
        Assert.Equal("virtio_mmio.device=512@0xd0001000:6", t.KernelCommandLineArgument);
        Assert.Equal(0xD000_1050UL, t.NotifyAddress);
    }

    [Fact]
    public void FeatureWindows()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        t.Write32(0x014, 0);
        Assert.Equal((uint)(VirtioFeatures.Common & 0xFFFF_FFFF), t.Read32(0x010));
        t.Write32(0x014, 1);
        Assert.Equal(1u, t.Read32(0x010)); // VERSION_1 is bit 32
        t.Write32(0x014, 7);
        Assert.Equal(0u, t.Read32(0x010));
        t.Write32(0x024, 0);
        t.Write32(0x020, 1u << 29);
        t.Write32(0x024, 1);
        t.Write32(0x020, 1);
        Assert.Equal(VirtioFeatures.RingEventIdx | VirtioFeatures.Version1, t.Device.DriverFeatures);
    }

    [Fact]
    public void FeaturesOkIsRefusedWithoutVersion1OrWithUnofferedBits()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        t.Write32(0x070, 3);
        t.Write32(0x070, 11);
        Assert.Equal(3u, t.Read32(0x070));
        t.Write32(0x024, 1);
        t.Write32(0x020, 1 | 2); // VERSION_1 plus bit 33, not offered
        t.Write32(0x070, 11);
        Assert.Equal(3u, t.Read32(0x070));
        t.Write32(0x020, 1);
        t.Write32(0x070, 11);
        Assert.Equal(11u, t.Read32(0x070));
        // After FEATURES_OK, feature writes are ignored.
        t.Write32(0x020, 0);
        Assert.Equal(VirtioFeatures.Version1, t.Device.DriverFeatures);
    }

    [Fact]
    public void StatusBitsCannotBeClearedExceptByReset()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        t.Write32(0x070, 3);
        t.Write32(0x070, 1);
        Assert.Equal(3u, t.Read32(0x070));
        t.Write32(0x070, 0x43); // the driver cannot set NEEDS_RESET
        Assert.Equal(3u, t.Read32(0x070));
        t.Write32(0x070, 0);
        Assert.Equal(0u, t.Read32(0x070));
    }

    [Fact]
    public void QueueSetupRegisters()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        t.Write32(0x030, 0);
        Assert.Equal(256u, t.Read32(0x034));
        t.Write32(0x038, 64);
        t.Write32(0x080, 0x1000);
        t.Write32(0x084, 0x2);
        t.Write32(0x090, 0x3000);
        t.Write32(0x0A0, 0x4000);
        Assert.Equal(64u, t.Read32(0x038));
        Assert.Equal(0x1000u, t.Read32(0x080));
        Assert.Equal(2u, t.Read32(0x084));
        Assert.Equal(0x2_0000_1000UL, t.Device.Queues[0].DescTable);
        Assert.Equal(0u, t.Read32(0x044));
        t.Write32(0x044, 1);
        Assert.Equal(1u, t.Read32(0x044));
        // A ready queue's configuration is frozen.
        t.Write32(0x038, 32);
        Assert.Equal(64u, t.Read32(0x038));
        // A queue that does not exist reads as size 0.
        t.Write32(0x030, 5);
        Assert.Equal(0u, t.Read32(0x034));
        Assert.Equal(0u, t.Read32(0x044));
    }

    [Fact]
    public void WrongWidthAccessesAreIgnored()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        Span<byte> two = stackalloc byte[2];
        t.Read(0, two);
        Assert.Equal(0, two[0]);
        t.Write(0x070, [1]);
        Assert.Equal(0u, t.Read32(0x070));
        Assert.Equal(2, t.UnexpectedAccesses);
        // Config space past its end.
        Span<byte> b = stackalloc byte[4];
        t.Read(0x100, b);
        Assert.Equal(3, t.UnexpectedAccesses);
    }

    [Fact]
    public void InterruptAckLowersTheLine()
    {
        using var rig = new BlockRig();
        rig.Submit(0, 0, 512, true);
        Assert.True(rig.Interrupts.Line);
        Assert.Equal(1u, rig.Transport.Read32(0x060));
        rig.Transport.Write32(0x064, 1);
        Assert.Equal(0u, rig.Transport.Read32(0x060));
        Assert.False(rig.Interrupts.Line);
    }

    [Fact]
    public void ConfigGenerationChangesWithTheDeviceState()
    {
        using var rig = new BlockRig();
        uint before = rig.Transport.Read32(0x0FC);
        rig.Queue.Publish(99);
        rig.Transport.Notify(0);
        Assert.NotEqual(before, rig.Transport.Read32(0x0FC));
    }

    [Fact]
    public void RegistersOnTheMmioBus()
    {
        var (t, _, memory) = Create();
        using var _m = memory;
        var bus = new IoBus("MMIO");
        bus.Register(t.BaseAddress, VirtioMmioTransport.WindowSize, t, "virtio-rng");
        Span<byte> b = stackalloc byte[4];
        bus.Read(0xD000_1000, b);
        Assert.Equal(0x74726976u, BitConverter.ToUInt32(b));
    }

    [Fact]
    public void BlockConfigSpaceIsReadableAtAnyWidth()
    {
        using var rig = new BlockRig();
        Span<byte> b = stackalloc byte[1];
        rig.Transport.Read(0x100 + 20, b); // blk_size low byte: 512 & 0xFF = 0
        Assert.Equal(0, b[0]);
        rig.Transport.Read(0x100 + 21, b);
        Assert.Equal(2, b[0]);
        Assert.Equal(BlockConfigSize, rig.Device.ConfigSize);
    }

    private const int BlockConfigSize = 60;
}
