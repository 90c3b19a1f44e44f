using Kiln.Devices.State;
using Kiln.Memory;
using Kiln.Storage;
using Kiln.Tests.Devices;
using Kiln.Virtio;
using Kiln.Virtio.Block;
using Kiln.Virtio.Console;
using Kiln.Virtio.Mmio;

namespace Kiln.Tests.Virtio;

public sealed class VirtioStateTests
{
    [Fact]
    public void MmioBlockRoundTripCarriesOn()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingEventIdx);
        Assert.Equal(0, rig.Submit(0, 1, 512, true));
        rig.Transport.Write32(0x030, 0);
        byte[] saved = Port.Save(rig.Transport);

        using var disk = RawDiskBackend.Open(rig.DiskPath, readOnly: false);
        var irq = new FakeVirtioInterrupts();
        var restored = new VirtioMmioTransport(new VirtioBlock(rig.Memory, disk), irq, 0xD000_0000, 5);
        Port.Restore(restored, saved);
        Assert.Equal(saved, Port.Save(restored));
        Assert.Equal(rig.Device.Status, restored.Device.Status);
        Assert.Equal(rig.Device.DriverFeatures, restored.Device.DriverFeatures);
        Assert.True(irq.Line); // interrupt status 1 was pending
        var q = restored.Device.Queues[0];
        Assert.Equal((16, true, 0x10000UL, 0x14000UL, 0x18000UL), (q.Size, q.Ready, q.DescTable, q.AvailRing, q.UsedRing));
        Assert.Equal((1, 1), (q.LastAvailIdx, q.NextUsedIdx));

        rig.WriteHeader(0, 2);
        rig.Queue.Publish(0);
        restored.Notify(0);
        Assert.Equal(2, rig.Queue.UsedIdx);
        Assert.Equal(0, rig.Memory.Read<byte>(new GuestAddress(BlockRig.Status)));
    }

    [Fact]
    public void TruncatedOrForeignStateIsRefused()
    {
        using var rig = new BlockRig();
        byte[] saved = Port.Save(rig.Transport);
        Assert.Throws<StateFormatException>(() => Port.Restore(rig.Transport, saved[..^3]));
        using var memory = VirtioTest.CreateMemory();
        var console = new VirtioMmioTransport(new VirtioConsole(memory, new FakeSerialOutput()), new FakeVirtioInterrupts(), 0, 5);
        Assert.Throws<StateFormatException>(() => Port.Restore(console, saved));
    }

    [Fact]
    public void QueueSizeInStateIsValidated()
    {
        var q = new Kiln.Virtio.Queue.Virtqueue(16);
        var w = new StateWriter();
        q.SaveState(w);
        byte[] blob = w.ToArray();
        blob[1] = 12; // size 12: not a power of two
        Assert.Throws<StateFormatException>(() => q.RestoreState(new StateReader(blob)));
    }
}

public sealed class VirtioPauseTests
{
    [Fact]
    public void PausedDeviceDefersWorkUntilResume()
    {
        using var rig = new BlockRig();
        rig.Device.Pause();
        rig.WriteHeader(0, 0);
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, 1, 1);
        rig.Queue.SetDescriptor(1, BlockRig.Data, 512, 3, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, 2);
        rig.Queue.Publish(0);
        rig.Transport.Notify(0);
        Assert.Equal(0, rig.Queue.UsedIdx);
        rig.Device.Resume();
        Assert.Equal(1, rig.Queue.UsedIdx);
    }
}
