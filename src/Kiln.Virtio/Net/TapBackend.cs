using Kiln.Interop;

namespace Kiln.Virtio.Net;

/// <summary>A Linux TAP interface as a <see cref="INetBackend"/>: /dev/net/tun with IFF_TAP | IFF_NO_PI |
/// IFF_VNET_HDR and a 12-byte virtio_net_hdr_v1 on every frame, non-blocking.</summary>
public sealed class TapBackend : INetBackend
{
    private const int ENOENT = 2, EPERM = 1, EACCES = 13, EBUSY = 16, ENODEV = 19, EINVAL = 22;

    private readonly FileDescriptor _fd;

    private TapBackend(string name, FileDescriptor fd, NetOffloads supported)
    {
        Name = name;
        _fd = fd;
        SupportedOffloads = supported;
    }

    public string Name { get; }
    public NetOffloads SupportedOffloads { get; }
    public FileDescriptor? ReadableFd => _fd;

    /// <summary>Attaches to tap <paramref name="name"/> (the kernel creates it if it does not exist), sets the header
    /// size, finds which offloads the kernel supports, brings the link up and, if <paramref name="bridge"/> is given,
    /// adds it to that bridge. Needs CAP_NET_ADMIN unless the tap is persistent and owned by the caller.</summary>
    public static TapBackend Open(string name, string? bridge = null)
    {
        if (!IfReq.IsValidName(name))
            throw new NetBackendException($"tap '{name}': invalid interface name (1-15 characters, no '/', ':' or spaces)");
        if (bridge is not null && !IfReq.IsValidName(bridge))
            throw new NetBackendException($"tap {name}: invalid bridge name '{bridge}'");
        FileDescriptor? fd = null;
        try
        {
            fd = Tun.OpenTap(name);
            Tun.SetVnetHeaderSize(fd, NetHeader.Size);
            var supported = ProbeOffloads(fd);
            NetInterface.SetUp(name);
            if (bridge is not null)
                NetInterface.AddToBridge(bridge, name);
            return new TapBackend(name, fd, supported);
        }
        catch (SystemCallException e)
        {
            fd?.Dispose();
            throw new NetBackendException(Describe(name, bridge, e), e);
        }
    }

    private static string Describe(string name, string? bridge, SystemCallException e) => (e.Call, e.Errno) switch
    {
        ("open", ENOENT) => $"tap {name}: /dev/net/tun does not exist (is the tun module loaded?)",
        ("open", EPERM or EACCES) => $"tap {name}: cannot open /dev/net/tun: permission denied",
        ("TUNSETIFF", EPERM or EACCES) =>
            $"tap {name}: permission denied (needs CAP_NET_ADMIN, or a persistent tap owned by this user)",
        ("TUNSETIFF", EBUSY) => $"tap {name}: the interface is busy (in use by another process?)",
        ("TUNSETIFF", EINVAL) => $"tap {name}: the interface exists but is not a tap with virtio-net headers",
        ("SIOCSIFFLAGS", EPERM or EACCES) => $"tap {name}: cannot bring the link up: permission denied",
        ("SIOCBRADDIF", ENODEV) => $"tap {name}: bridge {bridge} does not exist",
        ("SIOCBRADDIF", EINVAL or ENOENT) => $"tap {name}: {bridge} is not a bridge",
        ("SIOCBRADDIF", EPERM or EACCES) => $"tap {name}: cannot add it to bridge {bridge}: permission denied",
        _ => $"tap {name}: {e.Message}",
    };

    /// <summary>The largest offload set the kernel accepts, then offloads off until the driver negotiates them.</summary>
    private static NetOffloads ProbeOffloads(FileDescriptor fd)
    {
        NetOffloads[] candidates =
        [
            NetOffloads.Csum | NetOffloads.Tso4 | NetOffloads.Tso6 | NetOffloads.Ecn,
            NetOffloads.Csum | NetOffloads.Tso4 | NetOffloads.Tso6,
            NetOffloads.Csum,
        ];
        var supported = NetOffloads.None;
        foreach (var c in candidates)
            if (Tun.TrySetOffload(fd, (uint)c))
            {
                supported = c;
                break;
            }
        Tun.TrySetOffload(fd, 0);
        return supported;
    }

    public void SetOffloads(NetOffloads offloads)
    {
        if (!Tun.TrySetOffload(_fd, (uint)offloads))
            throw new NetBackendException($"tap {Name}: the kernel refused offloads {offloads}");
    }

    public int Receive(Span<byte> buffer) => Tun.ReadFrame(_fd, buffer);

    public bool Send(ReadOnlySpan<byte> frame) => Tun.WriteFrame(_fd, frame);

    public bool Send(scoped in FramePieces frame) => TapFrameIo.Write(_fd, frame);

    public int Receive(scoped in FramePieces buffers) => TapFrameIo.Read(_fd, buffers);

    public void Dispose() => _fd.Dispose();
}
