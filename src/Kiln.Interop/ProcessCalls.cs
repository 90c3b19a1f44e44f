using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>unistd.h, signal.h and sys/resource.h calls about this process and its descriptors: duplicating
/// descriptors (a VMM pointing its stdout at a domain log), fsync of a directory (a rename made durable), signals to
/// another process and scheduling priority (the daemon and the VMMs it starts).</summary>
public static partial class ProcessCalls
{
    private const string Lib = "libc";

    public const int SIGKILL = 9;
    public const int PRIO_PROCESS = 0;
    public const int O_DIRECTORY = 0x10000;

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int dup(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int dup2(int oldFd, int newFd);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int setpriority(int which, int who, int prio);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int getpriority(int which, int who);

    [LibraryImport(Lib)]
    private static partial int geteuid();

    /// <summary>A new descriptor for the same open file (close-on-exec is not set).</summary>
    public static int Duplicate(int fd)
    {
        int copy = dup(fd);
        if (copy < 0)
            SystemCallException.ThrowLast("dup");
        return copy;
    }

    /// <summary>Makes <paramref name="target"/> refer to what <paramref name="fd"/> refers to.</summary>
    public static void DuplicateTo(int fd, int target)
    {
        if (dup2(fd, target) < 0)
            SystemCallException.ThrowLast("dup2");
    }

    /// <summary>fsync(2) of a directory, so a rename in it survives a crash; best effort (false when it cannot).</summary>
    public static bool SyncDirectory(string path)
    {
        int fd = Libc.open(path, O_DIRECTORY | Libc.O_CLOEXEC);
        if (fd < 0)
            return false;
        bool ok = fsync(fd) == 0;
        Libc.close(fd);
        return ok;
    }

    /// <summary>Sends <paramref name="signal"/>; false when there is no such process (or no permission).</summary>
    public static bool Signal(int pid, int signal) => kill(pid, signal) == 0;

    /// <summary>A thread's (or, with who = 0, the calling thread's) nice value.</summary>
    public static int GetNice(int who = 0) => getpriority(PRIO_PROCESS, who);

    public static bool SetNice(int who, int nice) => setpriority(PRIO_PROCESS, who, nice) == 0;

    public static bool IsRoot => geteuid() == 0;
}
