using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>linux/if_tun.h: TAP interfaces through /dev/net/tun, with virtio-net headers on every frame.</summary>
public static unsafe class Tun
{
    public const short IFF_TAP = 0x0002;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_VNET_HDR = 0x4000;

    public const uint TUN_F_CSUM = 0x01;
    public const uint TUN_F_TSO4 = 0x02;
    public const uint TUN_F_TSO6 = 0x04;
    public const uint TUN_F_TSO_ECN = 0x08;

    private const ulong TUNSETIFF = 0x400454ca;     // _IOW('T', 202, int)
    private const ulong TUNSETOFFLOAD = 0x400454d0; // _IOW('T', 208, unsigned int)
    private const ulong TUNSETVNETHDRSZ = 0x400454d8; // _IOW('T', 216, int)

    /// <summary>Opens /dev/net/tun (non-blocking, close-on-exec) and attaches it to the TAP interface
    /// <paramref name="name"/> with IFF_NO_PI | IFF_VNET_HDR; the kernel creates the interface if it does not exist.</summary>
    public static FileDescriptor OpenTap(string name)
    {
        var fd = FileDescriptor.Open("/dev/net/tun", Libc.O_RDWR | Libc.O_NONBLOCK);
        try
        {
            var req = IfReq.Create(name);
            req.Flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
            // SAFETY: TUNSETIFF reads and writes one struct ifreq, which IfReq mirrors (40 bytes).
            if (Libc.ioctl(fd.Number, TUNSETIFF, &req) < 0)
                SystemCallException.ThrowLast("TUNSETIFF", name);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>TUNSETVNETHDRSZ: the size of the virtio-net header in front of every frame (10, 12 or more).</summary>
    public static void SetVnetHeaderSize(FileDescriptor fd, int size)
    {
        // SAFETY: the kernel reads one int.
        if (Libc.ioctl(fd.Number, TUNSETVNETHDRSZ, &size) < 0)
            SystemCallException.ThrowLast("TUNSETVNETHDRSZ");
    }

    /// <summary>TUNSETOFFLOAD: which offloads (TUN_F_*) the reader of the tap accepts in received frames.
    /// Returns false (EINVAL) when the kernel does not support one of them.</summary>
    public static bool TrySetOffload(FileDescriptor fd, uint flags)
    {
        // The argument is passed by value.
        if (Libc.ioctl(fd.Number, TUNSETOFFLOAD, (nuint)flags) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Errno.EINVAL)
            return false;
        throw new SystemCallException("TUNSETOFFLOAD", errno);
    }

    /// <summary>Reads one frame; returns its length, or 0 when none is waiting (EAGAIN).</summary>
    public static int ReadFrame(FileDescriptor fd, Span<byte> buffer)
    {
        var pieces = new FramePieces();
        pieces.TryAdd(buffer);
        return TapFrameIo.Read(fd, pieces);
    }

    /// <summary>Writes one frame in a single call; false when the kernel dropped it (see <see cref="TapFrameIo.Write"/>).</summary>
    public static bool WriteFrame(FileDescriptor fd, ReadOnlySpan<byte> frame)
    {
        var pieces = new FramePieces();
        // writev only reads the piece; FramePieces holds writable spans because readv shares it.
        pieces.TryAdd(MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(frame), frame.Length));
        return TapFrameIo.Write(fd, pieces);
    }
}
