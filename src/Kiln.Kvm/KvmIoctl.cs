using System.Runtime.InteropServices;
using Kiln.Interop;

namespace Kiln.Kvm;

/// <summary>The one place KVM ioctls are issued: failures become a <see cref="KvmException"/> naming the ioctl.</summary>
internal static unsafe class KvmIoctl
{
    public static int Call(FileDescriptor fd, ulong request, void* arg, string name)
    {
        int r = Libc.ioctl(fd.Number, request, arg);
        if (r < 0)
            Throw(name);
        return r;
    }

    public static int Call(FileDescriptor fd, ulong request, nuint arg, string name)
    {
        int r = Libc.ioctl(fd.Number, request, arg);
        if (r < 0)
            Throw(name);
        return r;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Throw(string name) => throw new KvmException(name, Marshal.GetLastPInvokeError());
}
