using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>One frame spread over up to <see cref="Capacity"/> pieces of memory (a copied header and the guest's own
/// buffers), so it moves between a tap and guest RAM in one writev/readv without a staging copy.</summary>
public ref struct FramePieces
{
    public const int Capacity = 4;

    private Span<byte> _p0, _p1, _p2, _p3;

    public int Count { get; private set; }

    /// <summary>Total bytes in all pieces.</summary>
    public int Length { get; private set; }

    /// <summary>Appends a piece; false (nothing added) when all <see cref="Capacity"/> are taken or the total would
    /// pass int.MaxValue. Empty pieces are skipped.</summary>
    public bool TryAdd(Span<byte> piece)
    {
        if (piece.IsEmpty)
            return true;
        if (Count == Capacity || piece.Length > int.MaxValue - Length)
            return false;
        switch (Count)
        {
            case 0: _p0 = piece; break;
            case 1: _p1 = piece; break;
            case 2: _p2 = piece; break;
            default: _p3 = piece; break;
        }
        Count++;
        Length += piece.Length;
        return true;
    }

    public readonly Span<byte> this[int i] => i switch
    {
        0 => _p0,
        1 => _p1,
        2 => _p2,
        3 => _p3,
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    /// <summary>Copies <paramref name="frame"/> into the pieces in order (what readv would have done); bytes beyond
    /// their total are cut off.</summary>
    public readonly void Scatter(ReadOnlySpan<byte> frame)
    {
        for (int i = 0; i < Count && !frame.IsEmpty; i++)
        {
            int take = Math.Min(this[i].Length, frame.Length);
            frame[..take].CopyTo(this[i]);
            frame = frame[take..];
        }
    }

    public void Clear()
    {
        _p0 = _p1 = _p2 = _p3 = default;
        Count = Length = 0;
    }
}

/// <summary>Whole frames to and from a tap (IFF_VNET_HDR, non-blocking) through writev/readv over
/// <see cref="FramePieces"/>. A tap takes or gives exactly one frame per call, so there is no partial transfer to
/// resume (unlike <see cref="VectorIo"/>'s stream helpers).</summary>
public static unsafe partial class TapFrameIo
{
    private const int EIO = 5;

    /// <summary>Sends the pieces as one frame. False when the kernel dropped it: no room (EAGAIN), the link is down
    /// (EIO), or it refused the frame's virtio-net header (EINVAL: a guest's bad offload request must cost only that
    /// frame, not the device).</summary>
    public static bool Write(FileDescriptor fd, scoped in FramePieces frame)
    {
        while (true)
        {
            nint n = Transfer(fd.Number, frame, write: true);
            if (n >= 0)
                return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Errno.EAGAIN or EIO or Errno.EINVAL)
                return false;
            if (errno != Errno.EINTR)
                throw new SystemCallException("writev", errno, "tap");
        }
    }

    /// <summary>Reads the next frame into the pieces, in order; returns its length (a frame longer than the pieces is
    /// cut short, as read(2) does), or 0 when none is waiting.</summary>
    public static int Read(FileDescriptor fd, scoped in FramePieces buffers)
    {
        while (true)
        {
            nint n = Transfer(fd.Number, buffers, write: false);
            if (n >= 0)
                return (int)n;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EAGAIN)
                return 0;
            if (errno != Errno.EINTR)
                throw new SystemCallException("readv", errno, "tap");
        }
    }

    private static nint Transfer(int fd, scoped in FramePieces f, bool write)
    {
        // Pinned for the call: guest RAM never moves, but a piece may be a managed array (the copied header).
        // SAFETY: the pieces are pinned; each iovec below is built from a piece and its own length.
        fixed (byte* p0 = f[0], p1 = f[1], p2 = f[2], p3 = f[3])
        {
            VectorIo.IoVec* iov = stackalloc VectorIo.IoVec[FramePieces.Capacity];
            iov[0] = new VectorIo.IoVec(p0, (nuint)f[0].Length);
            iov[1] = new VectorIo.IoVec(p1, (nuint)f[1].Length);
            iov[2] = new VectorIo.IoVec(p2, (nuint)f[2].Length);
            iov[3] = new VectorIo.IoVec(p3, (nuint)f[3].Length);
            // SAFETY: the kernel touches only the f.Count entries, each a pinned span of exactly that length.
            return write ? VectorIo.writev(fd, iov, f.Count) : VectorIo.readv(fd, iov, f.Count);
        }
    }
}
