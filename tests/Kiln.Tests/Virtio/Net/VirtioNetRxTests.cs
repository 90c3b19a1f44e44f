using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

public sealed class VirtioNetRxTests
{
    [Fact]
    public void FramesLandInSeparateBuffersWithoutMergeable()
    {
        using var rig = new NetRig();
        rig.PostRx(0, 2, 2048);
        byte[] a = FakeNetBackend.Frame(100, 1), b = FakeNetBackend.Frame(1514, 2);
        rig.Backend.Incoming.Enqueue(a);
        rig.Backend.Incoming.Enqueue(b);
        rig.Device.BackendReadable();

        Assert.Equal(2, rig.Rx.UsedIdx);
        Assert.Equal((0u, (uint)a.Length), rig.Rx.UsedElement(0));
        Assert.Equal((1u, (uint)b.Length), rig.Rx.UsedElement(1));
        byte[] gotB = rig.ReadGuest(NetRig.RxAddress(1, 2048), b.Length);
        Assert.Equal(1, NetRig.NumBuffers(gotB));
        Assert.Equal(b.AsSpan(NetHeader.Size).ToArray(), gotB.AsSpan(NetHeader.Size).ToArray());
        Assert.Equal((2L, 1614L, 0L), (rig.Device.Metrics.RxPackets, rig.Device.Metrics.RxBytes, rig.Device.Metrics.RxDropped));
        Assert.True(rig.Interrupts.Line);
    }

    [Fact]
    public void FrameIsReadStraightIntoAReceiveBuffer()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.MrgRxbuf);
        rig.PostRx(0, 2, 2048);
        byte[] frame = FakeNetBackend.Frame(1514, 4);
        frame[NetHeader.NumBuffersOffset] = 0x55; // the backend leaves num_buffers alone: the device must set it
        rig.Backend.Incoming.Enqueue(frame);
        rig.Device.BackendReadable();

        Assert.Equal(2, Assert.Single(rig.Backend.ReceivePieces)); // the guest buffer, then the overflow for a longer frame
        Assert.Equal(1, rig.Rx.UsedIdx);
        Assert.Equal((0u, (uint)frame.Length), rig.Rx.UsedElement(0));
        byte[] got = rig.ReadGuest(NetRig.RxAddress(0, 2048), frame.Length);
        Assert.Equal(1, NetRig.NumBuffers(got));
        Assert.Equal(frame.AsSpan(NetHeader.Size).ToArray(), got.AsSpan(NetHeader.Size).ToArray());
        Assert.Equal((1L, 0L), (rig.Device.Metrics.RxPackets, rig.Device.Metrics.RxDropped));
    }

    [Fact]
    public void MergeableFrameSpansSeveralChainsPublishedTogether()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.MrgRxbuf);
        rig.PostRx(0, 4, 1000);
        byte[] frame = FakeNetBackend.Frame(2500 - NetHeader.Size, 9);
        rig.Backend.Incoming.Enqueue(frame);
        rig.Device.BackendReadable();

        Assert.Equal(3, rig.Rx.UsedIdx);
        Assert.Equal((0u, 1000u), rig.Rx.UsedElement(0));
        Assert.Equal((1u, 1000u), rig.Rx.UsedElement(1));
        Assert.Equal((2u, 500u), rig.Rx.UsedElement(2));
        var got = new List<byte>();
        got.AddRange(rig.ReadGuest(NetRig.RxAddress(0, 1000), 1000));
        got.AddRange(rig.ReadGuest(NetRig.RxAddress(1, 1000), 1000));
        got.AddRange(rig.ReadGuest(NetRig.RxAddress(2, 1000), 500));
        Assert.Equal(3, NetRig.NumBuffers(got.ToArray()));
        Assert.Equal(frame.AsSpan(NetHeader.Size).ToArray(), got.Skip(NetHeader.Size).ToArray());
        Assert.Equal(4, rig.Device.Queues[0].LastAvailIdx); // the fourth is held ready for the next frame to land in
    }

    [Fact]
    public void FrameWithoutBuffersIsHeldNotSpunOnThenDelivered()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.MrgRxbuf);
        byte[] frame = FakeNetBackend.Frame(1800);
        rig.Backend.Incoming.Enqueue(frame);
        int before = rig.Backend.ReceiveCalls;
        rig.Device.BackendReadable();
        rig.Device.BackendReadable();
        Assert.Equal(before + 1, rig.Backend.ReceiveCalls); // held, not re-read, nothing else pulled from the backend
        Assert.Equal(0, rig.Rx.UsedIdx);

        rig.PostRx(0, 1, 1024); // not enough: stays stashed
        rig.Transport.Notify(0);
        Assert.Equal(0, rig.Rx.UsedIdx);

        rig.PostRx(1, 1, 1024);
        rig.Transport.Notify(0);
        Assert.Equal(2, rig.Rx.UsedIdx);
        Assert.Equal((1024u, (uint)frame.Length - 1024), (rig.Rx.UsedElement(0).Length, rig.Rx.UsedElement(1).Length));
        Assert.Equal((1L, 0L), (rig.Device.Metrics.RxPackets, rig.Device.Metrics.RxDropped));
    }

    [Fact]
    public void TooSmallBufferDropsTheFrameAndKeepsTheBuffer()
    {
        using var rig = new NetRig();
        rig.PostRx(0, 1, 200);
        rig.Backend.Incoming.Enqueue(FakeNetBackend.Frame(1000));
        byte[] small = FakeNetBackend.Frame(100);
        rig.Backend.Incoming.Enqueue(small);
        rig.Device.BackendReadable();
        Assert.Equal(1, rig.Rx.UsedIdx);
        Assert.Equal((0u, (uint)small.Length), rig.Rx.UsedElement(0));
        Assert.Equal((1L, 1L), (rig.Device.Metrics.RxPackets, rig.Device.Metrics.RxDropped));
    }

    [Fact]
    public void RuntFramesFromTheBackendAreDropped()
    {
        using var rig = new NetRig();
        rig.PostRx(0, 1, 2048);
        rig.Backend.Incoming.Enqueue(new byte[NetHeader.Size + 5]);
        rig.Device.BackendReadable();
        Assert.Equal(0, rig.Rx.UsedIdx);
        Assert.Equal(1, rig.Device.Metrics.RxDropped);
    }

    [Fact]
    public void LinkDownDropsReceivedFrames()
    {
        using var rig = new NetRig();
        rig.PostRx(0, 1, 2048);
        rig.Device.SetLinkUp(false);
        rig.Backend.Incoming.Enqueue(FakeNetBackend.Frame(100));
        rig.Device.BackendReadable();
        Assert.Equal(0, rig.Rx.UsedIdx);
        Assert.Equal(1, rig.Device.Metrics.RxDropped);
    }

    [Fact]
    public void DeviceReadableReceiveBufferNeedsReset()
    {
        using var rig = new NetRig();
        rig.Rx.SetDescriptor(0, NetRig.Buffers, 2048);
        rig.Rx.Publish(0);
        rig.Backend.Incoming.Enqueue(FakeNetBackend.Frame(100));
        rig.Device.BackendReadable();
        Assert.True(rig.Device.NeedsReset);
    }

    [Fact]
    public void MergeableBufferShorterThanHeaderNeedsReset()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.MrgRxbuf);
        rig.PostRx(0, 1, 8);
        rig.Backend.Incoming.Enqueue(FakeNetBackend.Frame(100));
        rig.Device.BackendReadable();
        Assert.True(rig.Device.NeedsReset);
    }

    [Fact]
    public void ResetDropsTheHeldFrame()
    {
        using var rig = new NetRig();
        rig.Backend.Incoming.Enqueue(FakeNetBackend.Frame(100));
        rig.Device.BackendReadable();
        rig.Transport.Write32(0x070, 0);
        Assert.Equal(1, rig.Device.Metrics.RxDropped);
        Assert.Equal(0, rig.Memory.Read<ushort>(new GuestAddress(rig.Rx.Used + 2)));
    }
}
