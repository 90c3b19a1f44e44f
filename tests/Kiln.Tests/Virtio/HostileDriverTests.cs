using Kiln.Memory;
using Kiln.Virtio;

namespace Kiln.Tests.Virtio;

/// <summary>A driver that breaks the protocol must make the device set DEVICE_NEEDS_RESET (and raise a configuration
/// interrupt) without anything throwing, and the device must stay quiet until it is reset.</summary>
public sealed class HostileDriverTests
{
    private const ushort Next = 1, Write = 2, Indirect = 4;

    private static void AssertNeedsReset(BlockRig rig)
    {
        Assert.True(rig.Device.NeedsReset);
        Assert.Equal(VirtioStatus.DeviceNeedsReset, (byte)(rig.Transport.Read32(0x070) & VirtioStatus.DeviceNeedsReset));
        Assert.Equal(2u, rig.Transport.InterruptStatus & 2);
        Assert.True(rig.Interrupts.Line);
        Assert.Equal(1, rig.Device.ProtocolErrors);
        Assert.Equal(0, rig.Queue.UsedIdx);
    }

    private static void Kick(BlockRig rig, ushort head = 0)
    {
        rig.WriteHeader(0, 0);
        rig.Queue.Publish(head);
        rig.Transport.Notify(0);
    }

    [Fact]
    public void HeadIndexOutOfRange()
    {
        using var rig = new BlockRig();
        Kick(rig, head: 16);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void NextIndexOutOfRange()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, Next, 200);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void DescriptorSelfLoop()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, Next, 0);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void ChainLongerThanTheQueue()
    {
        using var rig = new BlockRig();
        for (int i = 0; i < 16; i++)
            rig.Queue.SetDescriptor(i, BlockRig.Header, 16, Next, (ushort)((i + 1) % 16)); // a 16-cycle through all entries
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void IndirectTableOutsideRam()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc);
        rig.Queue.SetDescriptor(0, VirtioTest.RamSize - 16, 48, Indirect);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void NestedIndirect()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc);
        rig.Queue.SetDescriptorAt(0x60000, BlockRig.Header, 16, Next, 1);
        rig.Queue.SetDescriptorAt(0x60010, 0x61000, 32, Indirect);
        rig.Queue.SetDescriptor(0, 0x60000, 32, Indirect);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void IndirectLoopIsBoundedByTheTableLength()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc);
        rig.Queue.SetDescriptorAt(0x60000, BlockRig.Header, 16, Next, 1);
        rig.Queue.SetDescriptorAt(0x60010, BlockRig.Header, 16, Next, 0);
        rig.Queue.SetDescriptor(0, 0x60000, 32, Indirect);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void IndirectTableWithBadLength()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc);
        rig.Queue.SetDescriptor(0, 0x60000, 40, Indirect);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void IndirectWithoutTheFeature()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptorAt(0x60000, BlockRig.Header, 16);
        rig.Queue.SetDescriptor(0, 0x60000, 16, Indirect);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void BufferPastTheEndOfRam()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, Next, 1);
        rig.Queue.SetDescriptor(1, VirtioTest.RamSize - 256, 512, Next | Write, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, Write);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void BufferAddressThatOverflows()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, ulong.MaxValue - 8, 16, Next, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, Write);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void ZeroLengthDescriptor()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 0, Next, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, Write);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void OversizeLength()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, uint.MaxValue, Next, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, Write);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void WritableBufferWhereTheHeaderMustBeReadable()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, Next | Write, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, Write);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void ReadableBufferAfterAWritableOne()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, Next, 1);
        rig.Queue.SetDescriptor(1, BlockRig.Status, 1, Next | Write, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Data, 512, 0);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void NoStatusByte()
    {
        using var rig = new BlockRig();
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16);
        Kick(rig);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void AvailIdxJumpingMoreThanTheQueueSize()
    {
        using var rig = new BlockRig();
        rig.Queue.SetAvailIdx(17);
        rig.Transport.Notify(0);
        AssertNeedsReset(rig);
    }

    [Fact]
    public void DeviceStaysQuietUntilResetThenWorksAgain()
    {
        using var rig = new BlockRig();
        Kick(rig, head: 99);
        AssertNeedsReset(rig);
        // More notifications do nothing (and log nothing more).
        rig.Transport.Notify(0);
        Assert.Equal(1, rig.Device.ProtocolErrors);
        Assert.Equal(0, rig.Queue.UsedIdx);
        // Reset and bring it up again: requests work.
        rig.Transport.Write32(0x070, 0);
        Assert.Equal(0u, rig.Transport.Read32(0x070));
        Assert.False(rig.Interrupts.Line);
        rig.Memory.Fill(new GuestAddress(0x10000), 0x10000, 0);
        rig.Queue = VirtioTest.Setup(rig.Transport, rig.Memory, VirtioFeatures.Version1)[0];
        Assert.Equal(0, rig.Submit(0, 0, 512, true));
        Assert.Equal(1, rig.Queue.UsedIdx);
    }

    [Fact]
    public void DriverOkWithRingsOutsideRam()
    {
        using var rig = new BlockRig(setup: false);
        var t = rig.Transport;
        t.Write32(0x070, 3);
        t.Write32(0x024, 1);
        t.Write32(0x020, 1);
        t.Write32(0x070, 11);
        t.Write32(0x030, 0);
        t.Write32(0x080, 0xFFFF_F000);
        t.Write32(0x084, 0xFFFF_FFFF);
        t.Write32(0x044, 1);
        t.Write32(0x070, 15);
        Assert.True(rig.Device.NeedsReset);
        Assert.Equal(2u, t.InterruptStatus);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(12u)]
    [InlineData(512u)]
    public void DriverOkWithBadQueueSize(uint size)
    {
        using var rig = new BlockRig(setup: false);
        var t = rig.Transport;
        t.Write32(0x070, 3);
        t.Write32(0x024, 1);
        t.Write32(0x020, 1);
        t.Write32(0x070, 11);
        t.Write32(0x038, size);
        t.Write32(0x080, 0x10000);
        t.Write32(0x090, 0x14000);
        t.Write32(0x0A0, 0x18000);
        t.Write32(0x044, 1);
        t.Write32(0x070, 15);
        Assert.True(rig.Device.NeedsReset);
    }

    [Fact]
    public void RandomRingsNeverThrow()
    {
        var random = new Random(1234);
        for (int round = 0; round < 200; round++)
        {
            using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc | VirtioFeatures.RingEventIdx);
            var junk = new byte[16 * 16];
            random.NextBytes(junk);
            // Keep addresses mostly inside RAM so walks get past the first check.
            for (int i = 0; i < 16; i++)
                junk[i * 16 + 2] = junk[i * 16 + 3] = junk[i * 16 + 4] = junk[i * 16 + 5] = junk[i * 16 + 6] = junk[i * 16 + 7] = 0;
            rig.Memory.Write(new GuestAddress(rig.Queue.Desc), junk);
            rig.Queue.Publish((ushort)random.Next(20));
            rig.Queue.Publish((ushort)random.Next(20));
            rig.Transport.Notify(0);
            Assert.True(rig.Queue.UsedIdx <= 2);
        }
    }
}
