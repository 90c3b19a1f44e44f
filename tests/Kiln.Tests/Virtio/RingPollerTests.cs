using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Block;

namespace Kiln.Tests.Virtio;

/// <summary>virtio-blk polls its ring for a moment after each request with the driver asked not to notify; when it
/// stops, notifications must be asked for again, or the driver's next request would never wake the device.</summary>
public sealed class RingPollerTests
{
    [Fact]
    public void NotificationsAreEnabledAgainAfterServing()
    {
        using var rig = new BlockRig();
        Assert.Equal(BlockRequest.StatusOk, rig.Submit(BlockRequest.In, 0, 512, dataWritable: true));
        Assert.Equal(0, rig.Memory.Read<ushort>(new GuestAddress(rig.Queue.Used))); // VIRTQ_USED_F_NO_NOTIFY clear
        Assert.Equal(BlockRequest.StatusOk, rig.Submit(BlockRequest.In, 1, 512, dataWritable: true));
    }

    [Fact]
    public void WithEventIdxTheAvailEventAsksForTheNextEntry()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingEventIdx);
        for (ulong i = 0; i < 3; i++)
            Assert.Equal(BlockRequest.StatusOk, rig.Submit(BlockRequest.In, i, 512, dataWritable: true));
        ulong availEvent = rig.Queue.Used + 4 + 8UL * rig.Queue.Size;
        Assert.Equal(3, rig.Memory.Read<ushort>(new GuestAddress(availEvent)));
    }
}
