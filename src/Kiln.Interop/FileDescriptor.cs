using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>An owned Linux file descriptor, closed exactly once.</summary>
public sealed class FileDescriptor : SafeHandle
{
    public FileDescriptor(int fd, bool ownsHandle = true) : base(new IntPtr(-1), ownsHandle) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The raw number, for ioctls that take an fd as an argument (irqfd, ioeventfd).</summary>
    public int Number => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => Libc.close((int)handle.ToInt64()) == 0;

    public static FileDescriptor Open(string path, int flags)
    {
        int fd = Libc.open(path, flags | Libc.O_CLOEXEC);
        if (fd < 0)
            SystemCallException.ThrowLast("open", path);
        return new FileDescriptor(fd);
    }
}
