using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>sys/uio.h: gather writes and scatter reads (writev/readv), so data moves between a descriptor and
/// several buffers (e.g. guest pages) without first being copied into one. The whole-transfer helpers work on
/// blocking and non-blocking descriptors alike (EAGAIN waits in poll, bounded by a timeout).</summary>
public static unsafe partial class VectorIo
{
    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec(void* start, nuint length)
    {
        public void* Base = start;
        public nuint Length = length;
    }

    /// <summary>Linux's UIO_MAXIOV: more entries per call are refused with EINVAL.</summary>
    public const int MaxPerCall = 1024;

    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint writev(int fd, IoVec* iov, int count);

    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint readv(int fd, IoVec* iov, int count);

    /// <summary>Writes every byte the entries describe. The entries are consumed (advanced) as the kernel takes
    /// bytes, so the caller's span is left in an unspecified state.</summary>
    /// <exception cref="TimeoutException">the descriptor could not take more bytes within <paramref name="timeoutMs"/>.</exception>
    public static void WriteAll(int fd, Span<IoVec> entries, int timeoutMs) =>
        Transfer(fd, entries, timeoutMs, write: true);

    /// <summary>Fills every byte the entries describe.</summary>
    /// <exception cref="EndOfStreamException">the peer closed the stream first.</exception>
    /// <exception cref="TimeoutException">no byte arrived within <paramref name="timeoutMs"/>.</exception>
    public static void ReadAll(int fd, Span<IoVec> entries, int timeoutMs) =>
        Transfer(fd, entries, timeoutMs, write: false);

    private static void Transfer(int fd, Span<IoVec> entries, int timeoutMs, bool write)
    {
        int first = 0;
        while (first < entries.Length && entries[first].Length == 0)
            first++;
        while (first < entries.Length)
        {
            int count = Math.Min(entries.Length - first, MaxPerCall);
            nint n;
            // SAFETY: writev/readv read `count` iovecs from p (count <= entries.Length - first); the buffers they name are the caller's, checked when the entries were built.
            fixed (IoVec* p = &entries[first])
                n = write ? writev(fd, p, count) : readv(fd, p, count);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR)
                    continue;
                if (errno != Errno.EAGAIN)
                    SystemCallException.ThrowLast(write ? "writev" : "readv");
                WaitReady(fd, write, timeoutMs);
                continue;
            }
            if (n == 0 && !write)
                throw new EndOfStreamException("the peer closed the stream");
            // Skip what the kernel took: whole entries, then part of the next.
            nuint left = (nuint)n;
            while (first < entries.Length && left >= entries[first].Length)
            {
                left -= entries[first].Length;
                first++;
            }
            if (left > 0)
            {
                // SAFETY: left < entries[first].Length (the loop above), so the base stays inside that entry's buffer.
                entries[first].Base = (byte*)entries[first].Base + left;
                entries[first].Length -= left;
            }
            while (first < entries.Length && entries[first].Length == 0)
                first++;
        }
    }

    private static void WaitReady(int fd, bool write, int timeoutMs)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            Span<Poll.PollFd> fds = [new Poll.PollFd { Fd = fd, Events = write ? Poll.POLLOUT : Poll.POLLIN }];
            int wait = timeoutMs <= 0 ? -1 : (int)Math.Max(0, deadline - Environment.TickCount64);
            if (Poll.Wait(fds, wait) > 0)
                return; // ready, or an error/hang-up that the next call reports
            if (timeoutMs > 0 && Environment.TickCount64 >= deadline)
                throw new TimeoutException($"the descriptor was not ready to {(write ? "write" : "read")} within {timeoutMs} ms");
        }
    }
}
