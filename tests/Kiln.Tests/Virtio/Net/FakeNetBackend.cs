using Kiln.Interop;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

/// <summary>An in-memory <see cref="INetBackend"/>: frames to hand the device, frames it sent, offloads it set.</summary>
internal sealed class FakeNetBackend(NetOffloads supported = NetOffloads.Csum | NetOffloads.Tso4 | NetOffloads.Tso6 | NetOffloads.Ecn)
    : INetBackend
{
    public string Name => "fake0";
    public NetOffloads SupportedOffloads { get; } = supported;
    public FileDescriptor? ReadableFd => null;
    public Queue<byte[]> Incoming { get; } = new();
    public List<byte[]> Sent { get; } = [];
    public List<NetOffloads> OffloadCalls { get; } = [];
    public int ReceiveCalls { get; private set; }
    public bool Accept { get; set; } = true;

    public void SetOffloads(NetOffloads offloads) => OffloadCalls.Add(offloads);

    public int Receive(Span<byte> buffer)
    {
        ReceiveCalls++;
        if (!Incoming.TryDequeue(out var frame))
            return 0;
        frame.CopyTo(buffer);
        return frame.Length;
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        if (Accept)
            Sent.Add(frame.ToArray());
        return Accept;
    }

    /// <summary>How many pieces each gathered send / scattered receive had (0: the frame came as one copied span).</summary>
    public List<int> SendPieces { get; } = [];
    public List<int> ReceivePieces { get; } = [];

    public bool Send(scoped in FramePieces frame)
    {
        var joined = new List<byte>();
        for (int i = 0; i < frame.Count; i++)
            joined.AddRange(frame[i].ToArray());
        bool sent = Send(joined.ToArray());
        if (sent)
            SendPieces.Add(frame.Count);
        return sent;
    }

    public int Receive(scoped in FramePieces buffers)
    {
        var frame = new byte[NetHeader.MaxFrame];
        int n = Receive(frame);
        if (n == 0)
            return 0;
        ReceivePieces.Add(buffers.Count);
        buffers.Scatter(frame.AsSpan(0, n));
        return n;
    }

    public void Dispose()
    {
    }

    /// <summary>A frame with a zeroed 12-byte header and <paramref name="length"/> Ethernet bytes of a pattern.</summary>
    public static byte[] Frame(int length, byte seed = 1)
    {
        var f = new byte[NetHeader.Size + length];
        for (int i = 0; i < length; i++)
            f[NetHeader.Size + i] = (byte)(seed + i * 7);
        return f;
    }
}
