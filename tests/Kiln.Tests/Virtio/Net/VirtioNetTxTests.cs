using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

public sealed class VirtioNetTxTests
{
    private const ulong Frame = 0x80000;

    /// <summary>Writes header + payload at <see cref="Frame"/> and queues it as descriptors of the given sizes.</summary>
    private static byte[] Queue(NetRig rig, int payload, int[] pieces, byte flags = 0, byte gso = 0)
    {
        byte[] bytes = FakeNetBackend.Frame(payload, 3);
        bytes[NetHeader.FlagsOffset] = flags;
        bytes[NetHeader.GsoTypeOffset] = gso;
        rig.Memory.Write(new GuestAddress(Frame), bytes);
        ulong at = Frame;
        for (int i = 0; i < pieces.Length; i++)
        {
            rig.Tx.SetDescriptor(i, at, (uint)pieces[i], (ushort)(i + 1 < pieces.Length ? 1 : 0), (ushort)(i + 1));
            at += (ulong)pieces[i];
        }
        rig.Tx.Publish(0);
        return bytes;
    }

    [Fact]
    public void MultiDescriptorFrameReachesBackendWithItsHeader()
    {
        using var rig = new NetRig();
        byte[] sent = Queue(rig, 1000, [NetHeader.Size, 400, 600]);
        rig.Transport.Notify(1);

        Assert.Equal(sent, Assert.Single(rig.Backend.Sent));
        Assert.Equal(1, rig.Tx.UsedIdx);
        Assert.Equal((0u, 0u), rig.Tx.UsedElement(0));
        Assert.Equal((1L, 1000L, 0L), (rig.Device.Metrics.TxPackets, rig.Device.Metrics.TxBytes, rig.Device.Metrics.TxDropped));
        Assert.True(rig.Interrupts.Line);
    }

    [Fact]
    public void HeaderSplitAcrossDescriptorsIsGathered()
    {
        using var rig = new NetRig();
        byte[] sent = Queue(rig, 60, [5, 7, 60]);
        rig.Transport.Notify(1);
        Assert.Equal(sent, Assert.Single(rig.Backend.Sent));
    }

    [Fact]
    public void FrameGoesOutStraightFromGuestBuffersBehindAHeaderCopy()
    {
        using var rig = new NetRig();
        byte[] sent = Queue(rig, 1514, [NetHeader.Size + 1514]);
        rig.Transport.Notify(1);
        Assert.Equal(sent, Assert.Single(rig.Backend.Sent));
        Assert.Equal(2, Assert.Single(rig.Backend.SendPieces)); // the checked header copy, then the guest's bytes
    }

    [Fact]
    public void FrameInMoreBuffersThanOneGatherIsCopied()
    {
        using var rig = new NetRig();
        byte[] sent = Queue(rig, 200, [NetHeader.Size, 40, 40, 40, 40, 40]);
        rig.Transport.Notify(1);
        Assert.Equal(sent, Assert.Single(rig.Backend.Sent));
        Assert.Empty(rig.Backend.SendPieces);
        Assert.Equal(1, rig.Tx.UsedIdx);
    }

    [Fact]
    public void OffloadsTheDriverDidNotNegotiateAreDropped()
    {
        using var rig = new NetRig();
        Queue(rig, 100, [112], flags: NetHeader.FlagNeedsCsum);
        rig.Transport.Notify(1);
        Queue(rig, 100, [112], gso: NetHeader.GsoTcpV4);
        rig.Transport.Notify(1);
        Assert.Empty(rig.Backend.Sent);
        Assert.Equal(2, rig.Device.Metrics.TxDropped);
        Assert.Equal(2, rig.Tx.UsedIdx); // still returned to the driver
    }

    [Fact]
    public void NegotiatedOffloadsPassThrough()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.Csum | NetFeatures.HostTso4);
        Queue(rig, 3000, [3012], flags: NetHeader.FlagNeedsCsum, gso: NetHeader.GsoTcpV4);
        rig.Transport.Notify(1);
        Assert.Single(rig.Backend.Sent);
    }

    [Fact]
    public void BackendRefusalCountsADrop()
    {
        using var rig = new NetRig();
        rig.Backend.Accept = false;
        Queue(rig, 100, [112]);
        rig.Transport.Notify(1);
        Assert.Equal((0L, 1L), (rig.Device.Metrics.TxPackets, rig.Device.Metrics.TxDropped));
        Assert.False(rig.Device.NeedsReset);
    }

    [Theory]
    [InlineData("writable")]
    [InlineData("outside-ram")]
    [InlineData("no-header")]
    [InlineData("loop")]
    [InlineData("too-long")]
    public void HostileTransmitChainNeedsReset(string kind)
    {
        using var rig = new NetRig();
        switch (kind)
        {
            case "writable":
                rig.Tx.SetDescriptor(0, Frame, 12, 1, 1);
                rig.Tx.SetDescriptor(1, Frame + 12, 100, 2);
                break;
            case "outside-ram":
                rig.Tx.SetDescriptor(0, VirtioTest.RamSize - 8, 100);
                break;
            case "no-header":
                rig.Tx.SetDescriptor(0, Frame, 8);
                break;
            case "loop":
                rig.Tx.SetDescriptor(0, Frame, 12, 1, 1);
                rig.Tx.SetDescriptor(1, Frame, 12, 1, 0);
                break;
            case "too-long":
                rig.Tx.SetDescriptor(0, Frame, (uint)NetHeader.MaxFrame + 1);
                break;
        }
        rig.Tx.Publish(0);
        rig.Transport.Notify(1);
        Assert.True(rig.Device.NeedsReset);
        Assert.Empty(rig.Backend.Sent);
        Assert.Equal(1, rig.Device.ProtocolErrors);
    }
}
