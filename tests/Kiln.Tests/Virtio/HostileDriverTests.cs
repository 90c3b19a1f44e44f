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

    /// <summary>One malformed chain per case: the features the driver negotiates (beyond VERSION_1), the descriptors
    /// it writes, and the head it publishes.</summary>
    private static readonly Dictionary<string, (ulong Features, Action<DriverQueue> Write, ushort Head)> MalformedChains = new()
    {
        ["head index out of range"] = (0, _ => { }, 16),
        ["next index out of range"] = (0, q => q.SetDescriptor(0, BlockRig.Header, 16, Next, 200), 0),
        ["descriptor self-loop"] = (0, q => q.SetDescriptor(0, BlockRig.Header, 16, Next, 0), 0),
        ["chain longer than the queue"] = (0, q =>
        {
            for (int i = 0; i < 16; i++)
                q.SetDescriptor(i, BlockRig.Header, 16, Next, (ushort)((i + 1) % 16)); // a 16-cycle through all entries
        }, 0),
        ["indirect table outside RAM"] = (VirtioFeatures.RingIndirectDesc,
            q => q.SetDescriptor(0, VirtioTest.RamSize - 16, 48, Indirect), 0),
        ["nested indirect"] = (VirtioFeatures.RingIndirectDesc, q =>
        {
            q.SetDescriptorAt(0x60000, BlockRig.Header, 16, Next, 1);
            q.SetDescriptorAt(0x60010, 0x61000, 32, Indirect);
            q.SetDescriptor(0, 0x60000, 32, Indirect);
        }, 0),
        ["indirect loop bounded by the table length"] = (VirtioFeatures.RingIndirectDesc, q =>
        {
            q.SetDescriptorAt(0x60000, BlockRig.Header, 16, Next, 1);
            q.SetDescriptorAt(0x60010, BlockRig.Header, 16, Next, 0);
            q.SetDescriptor(0, 0x60000, 32, Indirect);
        }, 0),
        ["indirect table with a bad length"] = (VirtioFeatures.RingIndirectDesc,
            q => q.SetDescriptor(0, 0x60000, 40, Indirect), 0),
        ["indirect without the feature"] = (0, q =>
        {
            q.SetDescriptorAt(0x60000, BlockRig.Header, 16);
            q.SetDescriptor(0, 0x60000, 16, Indirect);
        }, 0),
        ["buffer past the end of RAM"] = (0, q =>
        {
            q.SetDescriptor(0, BlockRig.Header, 16, Next, 1);
            q.SetDescriptor(1, VirtioTest.RamSize - 256, 512, Next | Write, 2);
            q.SetDescriptor(2, BlockRig.Status, 1, Write);
        }, 0),
        ["buffer address that overflows"] = (0, q => HeaderThenStatus(q, ulong.MaxValue - 8, 16, Next), 0),
        ["zero-length descriptor"] = (0, q => HeaderThenStatus(q, BlockRig.Header, 0, Next), 0),
        ["oversize length"] = (0, q => HeaderThenStatus(q, BlockRig.Header, uint.MaxValue, Next), 0),
        ["writable buffer where the header must be readable"] = (0, q => HeaderThenStatus(q, BlockRig.Header, 16, Next | Write), 0),
        ["readable buffer after a writable one"] = (0, q =>
        {
            q.SetDescriptor(0, BlockRig.Header, 16, Next, 1);
            q.SetDescriptor(1, BlockRig.Status, 1, Next | Write, 2);
            q.SetDescriptor(2, BlockRig.Data, 512, 0);
        }, 0),
        ["no status byte"] = (0, q => q.SetDescriptor(0, BlockRig.Header, 16), 0),
    };

    /// <summary>Descriptor 0 as given, chained to a well-formed status byte in descriptor 2.</summary>
    private static void HeaderThenStatus(DriverQueue q, ulong address, uint length, ushort flags)
    {
        q.SetDescriptor(0, address, length, flags, 2);
        q.SetDescriptor(2, BlockRig.Status, 1, Write);
    }

    public static TheoryData<string> MalformedChainNames => new(MalformedChains.Keys);

    [Theory]
    [MemberData(nameof(MalformedChainNames))]
    public void MalformedChainNeedsReset(string chain)
    {
        var (features, write, head) = MalformedChains[chain];
        using var rig = new BlockRig(extraFeatures: features);
        write(rig.Queue);
        Kick(rig, head);
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
