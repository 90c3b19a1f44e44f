namespace Kiln.Virtio.Net;

/// <summary>struct virtio_net_hdr_v1 (virtio 1.x section 5.1.6): 12 bytes in front of every frame once VERSION_1 is
/// negotiated, whether or not MRG_RXBUF is.</summary>
public static class NetHeader
{
    public const int Size = 12;
    public const int FlagsOffset = 0;
    public const int GsoTypeOffset = 1;
    public const int NumBuffersOffset = 10;

    public const byte FlagNeedsCsum = 1;
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoEcn = 0x80;

    /// <summary>The largest frame (header + Ethernet header with a VLAN tag + a 64 KiB GSO payload) either direction
    /// carries; a longer transmit chain is a protocol violation.</summary>
    public const int MaxFrame = Size + 18 + 65535;
}
