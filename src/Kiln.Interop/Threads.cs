using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>Kicking a thread out of a blocking ioctl (KVM_RUN): a signal whose handler does nothing makes the
/// ioctl return EINTR. SIGUSR1 is not used by the .NET runtime.</summary>
public static unsafe partial class Threads
{
    public const int SIGUSR1 = 10;
    private const long SYS_gettid = 186;
    private const long SYS_tgkill = 234;
    private const int SA_RESTART = 0x10000000;
    private const int SA_RESTORER = 0x04000000;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a, long b, long c);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sigaction(int signum, byte* act, byte* oldact);

    private static int s_installed;

    /// <summary>The calling thread's kernel id, to address it with <see cref="Kick"/>.</summary>
    public static int CurrentThreadId() => (int)syscall(SYS_gettid, 0, 0, 0);

    /// <summary>Installs the no-op handler once per process. No SA_RESTART: KVM_RUN must come back with EINTR.</summary>
    public static void InstallKickHandler()
    {
        if (Interlocked.Exchange(ref s_installed, 1) != 0)
            return;
        // struct sigaction (x86-64 glibc): handler (8), sa_mask (128), sa_flags (4 + 4 pad), sa_restorer (8).
        byte* act = stackalloc byte[152];
        new Span<byte>(act, 152).Clear();
        *(nint*)act = NoOpHandler();
        if (sigaction(SIGUSR1, act, null) != 0)
            SystemCallException.ThrowLast("sigaction");
    }

    /// <summary>The handler must be native code: a signal can land while the kicked thread runs managed code (it
    /// is handling an exit), and the runtime aborts the process when a managed [UnmanagedCallersOnly] handler is
    /// entered from managed code ("Invalid Program"). libc's abs(int) has the handler's shape, touches nothing
    /// and is async-signal-safe: a native no-op.</summary>
    private static nint NoOpHandler() =>
        NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "abs");

    public static void Kick(int threadId)
    {
        if (syscall(SYS_tgkill, Libc.getpid(), threadId, SIGUSR1) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != 3) // ESRCH: the thread already left
                throw new SystemCallException("tgkill", errno);
        }
    }
}
