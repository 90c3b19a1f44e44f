using System.Net.Sockets;
using Kiln.Interop;

namespace Kiln.Tests.Virtio.Net;

/// <summary>TapFrameIo's writev/readv, on a datagram socket pair (which keeps message boundaries, as a tap does).</summary>
public sealed class TapFrameIoTests
{
    private static (Socket A, Socket B) Pair()
    {
        string name = $"kiln-tapio-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var b = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        b.Bind(new UnixDomainSocketEndPoint("\0" + name));
        var a = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        a.Connect(new UnixDomainSocketEndPoint("\0" + name));
        b.Blocking = false;
        return (a, b);
    }

    [Fact]
    public void PiecesGoOutAsOneFrameInOrder()
    {
        var (a, b) = Pair();
        using (a)
        using (b)
        {
            byte[] header = [1, 2, 3], body = [4, 5, 6, 7, 8];
            var pieces = new FramePieces();
            Assert.True(pieces.TryAdd(header));
            Assert.True(pieces.TryAdd(Span<byte>.Empty)); // skipped
            Assert.True(pieces.TryAdd(body));
            Assert.Equal((2, 8), (pieces.Count, pieces.Length));
            Assert.True(TapFrameIo.Write(new FileDescriptor((int)a.Handle, ownsHandle: false), pieces));
            var got = new byte[64];
            Assert.Equal(8, b.Receive(got));
            Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, got[..8]);
        }
    }

    [Fact]
    public void FrameIsScatteredOverThePiecesAndAnEmptyQueueReadsZero()
    {
        var (a, b) = Pair();
        using (a)
        using (b)
        {
            var fd = new FileDescriptor((int)b.Handle, ownsHandle: false);
            byte[] first = new byte[3], second = new byte[10];
            var pieces = new FramePieces();
            pieces.TryAdd(first);
            pieces.TryAdd(second);
            Assert.Equal(0, TapFrameIo.Read(fd, pieces));
            a.Send(new byte[] { 9, 8, 7, 6, 5 });
            Assert.Equal(5, TapFrameIo.Read(fd, pieces));
            Assert.Equal(new byte[] { 9, 8, 7 }, first);
            Assert.Equal(new byte[] { 6, 5 }, second[..2]);
        }
    }

    [Fact]
    public void AGatherHoldsAtMostFourPieces()
    {
        var pieces = new FramePieces();
        byte[] one = [0];
        for (int i = 0; i < FramePieces.Capacity; i++)
            Assert.True(pieces.TryAdd(one));
        Assert.False(pieces.TryAdd(one));
        Assert.Equal(FramePieces.Capacity, pieces.Count);
    }
}
