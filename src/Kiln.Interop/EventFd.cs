using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>sys/eventfd.h: the counters KVM uses for irqfd and ioeventfd.</summary>
public static unsafe partial class EventFd
{
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    public static FileDescriptor Create(int flags = EFD_CLOEXEC)
    {
        int fd = eventfd(0, flags | EFD_CLOEXEC);
        if (fd < 0)
            SystemCallException.ThrowLast("eventfd");
        return new FileDescriptor(fd);
    }

    public static void Signal(FileDescriptor fd)
    {
        ulong one = 1;
        // SAFETY: an eventfd write takes exactly 8 bytes, and `one` is an 8-byte local.
        if (Libc.write(fd.Number, (byte*)&one, 8) != 8)
            SystemCallException.ThrowLast("eventfd write");
    }

    /// <summary>Reads and clears the counter; returns 0 if a non-blocking eventfd was not signalled.</summary>
    public static ulong Consume(FileDescriptor fd)
    {
        ulong value;
        // SAFETY: an eventfd read fills exactly 8 bytes, and `value` is an 8-byte local.
        nint n = Libc.read(fd.Number, (byte*)&value, 8);
        if (n == 8)
            return value;
        int errno = Marshal.GetLastPInvokeError();
        if (errno is Errno.EAGAIN or Errno.EINTR)
            return 0;
        throw new SystemCallException("eventfd read", errno);
    }
}
