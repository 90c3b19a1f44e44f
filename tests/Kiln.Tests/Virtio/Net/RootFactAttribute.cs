namespace Kiln.Tests.Virtio.Net;

/// <summary>A test that creates real network interfaces: needs root (CAP_NET_ADMIN), /dev/net/tun and `ip`.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/dev/net/tun") || !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip"))
            Skip = "needs root, /dev/net/tun and iproute2 to create tap interfaces";
    }
}
