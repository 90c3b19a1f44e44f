using System.Buffers;
using Kiln.Interop;

namespace Kiln.Virtio.Net;

/// <summary>Offloads the guest accepts in received frames (TUN_F_* for a tap).</summary>
[Flags]
public enum NetOffloads : uint
{
    None = 0,
    Csum = 1,
    Tso4 = 2,
    Tso6 = 4,
    Ecn = 8,
}

/// <summary>Where a virtio-net device's frames go and come from (a tap, or a fake in tests). Every frame carries a
/// 12-byte virtio_net_hdr_v1 (<see cref="NetHeader"/>) in front of the Ethernet frame, in both directions.
/// Called only on the device's worker thread, except <see cref="ReadableFd"/>.</summary>
public interface INetBackend : IDisposable
{
    /// <summary>A short name for logs (the tap's interface name).</summary>
    string Name { get; }

    /// <summary>Offloads the backend can deliver to the guest; the device offers the matching GUEST_* features.</summary>
    NetOffloads SupportedOffloads { get; }

    /// <summary>Enables the offloads the driver negotiated (TUNSETOFFLOAD); a subset of <see cref="SupportedOffloads"/>.</summary>
    void SetOffloads(NetOffloads offloads);

    /// <summary>A descriptor that polls readable when <see cref="Receive"/> has a frame, or null: then whoever feeds
    /// the backend calls <see cref="VirtioNet.BackendReadable"/> instead.</summary>
    FileDescriptor? ReadableFd { get; }

    /// <summary>Reads one frame (header + Ethernet frame) into <paramref name="buffer"/>; returns its length, or 0 when
    /// none is waiting. Never blocks.</summary>
    int Receive(Span<byte> buffer);

    /// <summary>Sends one frame (header + Ethernet frame) in one call. Returns false when it was dropped (no room, link
    /// down). Never blocks.</summary>
    bool Send(ReadOnlySpan<byte> frame);

    /// <summary>Sends one frame given in pieces (the device's copy of the header, then the guest's own buffers) in one
    /// call, so a backend that can gather (a tap: writev) needs no staging copy. By default the pieces are joined
    /// and passed to <see cref="Send(ReadOnlySpan{byte})"/>.</summary>
    bool Send(scoped in FramePieces frame)
    {
        byte[] joined = ArrayPool<byte>.Shared.Rent(frame.Length);
        try
        {
            int at = 0;
            for (int i = 0; i < frame.Count; i++)
            {
                frame[i].CopyTo(joined.AsSpan(at));
                at += frame[i].Length;
            }
            return Send(joined.AsSpan(0, at));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }
    }

    /// <summary>Reads one frame straight into <paramref name="buffers"/>, in order (a tap: readv), so it can land in
    /// guest buffers without a staging copy. Returns its length, or 0 when none is waiting; never blocks. The pieces
    /// must hold at least <see cref="NetHeader.MaxFrame"/> bytes. By default <see cref="Receive(Span{byte})"/> reads
    /// into a temporary buffer that is then scattered.</summary>
    int Receive(scoped in FramePieces buffers)
    {
        byte[] frame = ArrayPool<byte>.Shared.Rent(Math.Max(buffers.Length, NetHeader.MaxFrame));
        try
        {
            int n = Receive(frame);
            buffers.Scatter(frame.AsSpan(0, n));
            return n;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }
}
