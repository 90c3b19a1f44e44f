using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>poll.h: waiting for several descriptors at once.</summary>
public static unsafe partial class Poll
{
    public const short POLLIN = 0x001;
    public const short POLLOUT = 0x004;
    public const short POLLERR = 0x008;
    public const short POLLHUP = 0x010;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint nfds, int timeout);

    /// <summary>poll(2); returns the number of ready entries (0 on timeout or EINTR).</summary>
    public static int Wait(Span<PollFd> fds, int timeoutMs)
    {
        // SAFETY: fds is pinned for the call; see the kernel's bound below.
        fixed (PollFd* p = fds)
        {
            // SAFETY: the kernel writes only the revents of the fds.Length entries we pass.
            int n = poll(p, (nuint)fds.Length, timeoutMs);
            if (n >= 0)
                return n;
            if (Marshal.GetLastPInvokeError() == Errno.EINTR)
                return 0;
            SystemCallException.ThrowLast("poll");
            return 0;
        }
    }
}
