using System.Net;
using System.Net.Sockets;
using Kiln.Interop;

namespace Kiln.Tests.Native;

/// <summary>writev/readv whole transfers: many entries, partial transfers and EAGAIN on a non-blocking socket, the
/// peer closing early, and a stalled peer hitting the timeout.</summary>
public sealed unsafe class VectorIoTests
{
    private static (Socket A, Socket B) Pair()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var a = new Socket(SocketType.Stream, ProtocolType.Tcp);
        a.Connect(listener.LocalEndPoint!);
        var b = listener.Accept();
        return (a, b);
    }

    [Fact]
    public void MovesManyEntriesThroughSmallNonBlockingBuffers()
    {
        var (a, b) = Pair();
        using (a)
        using (b)
        {
            a.SendBufferSize = 16 << 10; // far less than the transfer: writev takes it in pieces, EAGAIN in between
            a.Blocking = false;
            const int entries = 1500, size = 4096; // more than one call's UIO_MAXIOV
            var source = new byte[entries * size];
            new Random(5).NextBytes(source);
            var target = new byte[entries * size];
            Exception? readFailure = null;
            var reader = new Thread(() =>
            {
                try
                {
                    // Entries of uneven sizes on this side, so partial reads land mid-entry.
                    fixed (byte* t = target)
                    {
                        var iov = new List<VectorIo.IoVec>();
                        for (int at = 0; at < target.Length;)
                        {
                            int length = Math.Min(target.Length - at, 1000 + at % 7000);
                            iov.Add(new VectorIo.IoVec(t + at, (nuint)length));
                            at += length;
                        }
                        VectorIo.ReadAll((int)b.Handle, iov.ToArray(), 10_000);
                    }
                }
                catch (Exception e)
                {
                    readFailure = e; // a throw on this thread would end the test host
                }
            });
            reader.Start();
            fixed (byte* s = source)
            {
                var iov = new VectorIo.IoVec[entries];
                for (int i = 0; i < entries; i++)
                    iov[i] = new VectorIo.IoVec(s + i * size, size);
                VectorIo.WriteAll((int)a.Handle, iov, 10_000);
            }
            Assert.True(reader.Join(TimeSpan.FromSeconds(20)));
            Assert.Null(readFailure);
            Assert.Equal(source, target);
        }
    }

    [Fact]
    public void ReadingPastTheEndOfTheStreamThrows()
    {
        var (a, b) = Pair();
        using (b)
        {
            a.Send(new byte[10]);
            a.Dispose();
            nint buffer = (nint)System.Runtime.InteropServices.NativeMemory.Alloc(20);
            try
            {
                Assert.Throws<EndOfStreamException>(() => VectorIo.ReadAll((int)b.Handle, [new VectorIo.IoVec((void*)buffer, 20)], 5000));
            }
            finally
            {
                System.Runtime.InteropServices.NativeMemory.Free((void*)buffer);
            }
        }
    }

    [Fact]
    public void AStalledPeerTimesOut()
    {
        var (a, b) = Pair();
        using (a)
        using (b)
        {
            b.Blocking = false;
            nint buffer = (nint)System.Runtime.InteropServices.NativeMemory.Alloc(8);
            try
            {
                Assert.Throws<TimeoutException>(() => VectorIo.ReadAll((int)b.Handle, [new VectorIo.IoVec((void*)buffer, 8)], 200));
            }
            finally
            {
                System.Runtime.InteropServices.NativeMemory.Free((void*)buffer);
            }
        }
    }
}
