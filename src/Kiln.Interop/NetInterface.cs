using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>sys/ioctl.h socket ioctls on network interfaces (linux/sockios.h): flags, index, bridge ports.
/// Each call uses a short-lived AF_INET datagram socket.</summary>
public static unsafe partial class NetInterface
{
    private const int AF_INET = 2;
    private const int SOCK_DGRAM = 2;
    private const int SOCK_CLOEXEC = 0x80000;
    private const ulong SIOCGIFFLAGS = 0x8913;
    private const ulong SIOCSIFFLAGS = 0x8914;
    private const ulong SIOCGIFINDEX = 0x8933;
    private const ulong SIOCBRADDIF = 0x89a2;
    public const short IFF_UP = 0x1;
    private const int EBUSY = 16;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    private static FileDescriptor Socket()
    {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            SystemCallException.ThrowLast("socket(AF_INET, SOCK_DGRAM)");
        return new FileDescriptor(fd);
    }

    private static void Ioctl(FileDescriptor socket, ulong request, ref IfReq req, string call, string name)
    {
        // SAFETY: every SIOC* request used here reads and writes at most one struct ifreq, which IfReq mirrors.
        fixed (IfReq* p = &req)
        {
            if (Libc.ioctl(socket.Number, request, p) < 0)
                SystemCallException.ThrowLast(call, name);
        }
    }

    /// <summary>Sets IFF_UP on the interface (SIOCGIFFLAGS, then SIOCSIFFLAGS if needed).</summary>
    public static void SetUp(string name)
    {
        using var s = Socket();
        var req = IfReq.Create(name);
        Ioctl(s, SIOCGIFFLAGS, ref req, "SIOCGIFFLAGS", name);
        if ((req.Flags & IFF_UP) != 0)
            return;
        req.Flags |= IFF_UP;
        Ioctl(s, SIOCSIFFLAGS, ref req, "SIOCSIFFLAGS", name);
    }

    public static int GetIndex(string name)
    {
        using var s = Socket();
        var req = IfReq.Create(name);
        Ioctl(s, SIOCGIFINDEX, ref req, "SIOCGIFINDEX", name);
        return req.Index;
    }

    /// <summary>Adds interface <paramref name="name"/> to the bridge <paramref name="bridge"/> (SIOCBRADDIF);
    /// already being a port of it is not an error.</summary>
    public static void AddToBridge(string bridge, string name)
    {
        int index = GetIndex(name);
        using var s = Socket();
        var req = IfReq.Create(bridge);
        req.Index = index;
        // SAFETY: SIOCBRADDIF reads one struct ifreq (a local, so its address is fixed).
        if (Libc.ioctl(s.Number, SIOCBRADDIF, &req) < 0 && Marshal.GetLastPInvokeError() != EBUSY)
            SystemCallException.ThrowLast("SIOCBRADDIF", bridge);
    }
}
