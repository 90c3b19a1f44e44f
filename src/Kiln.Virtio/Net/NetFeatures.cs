namespace Kiln.Virtio.Net;

/// <summary>virtio-net feature bits (virtio 1.x section 5.1.3).</summary>
public static class NetFeatures
{
    public const ulong Csum = 1UL << 0;
    public const ulong GuestCsum = 1UL << 1;
    public const ulong Mac = 1UL << 5;
    public const ulong GuestTso4 = 1UL << 7;
    public const ulong GuestTso6 = 1UL << 8;
    public const ulong GuestEcn = 1UL << 9;
    public const ulong HostTso4 = 1UL << 11;
    public const ulong HostTso6 = 1UL << 12;
    public const ulong HostEcn = 1UL << 13;
    public const ulong MrgRxbuf = 1UL << 15;
    public const ulong Status = 1UL << 16;

    /// <summary>Offered whatever the backend: the device itself handles these.</summary>
    public const ulong Always = Mac | Status | MrgRxbuf;

    /// <summary>Guest-to-host offloads: the backend must accept partial checksums and GSO frames (a tap does).</summary>
    public const ulong HostOffloads = Csum | HostTso4 | HostTso6 | HostEcn;

    /// <summary>The backend offloads the host may use in frames it sends to the guest, as features.</summary>
    public static ulong GuestOffloads(NetOffloads supported) =>
        ((supported & NetOffloads.Csum) != 0 ? GuestCsum : 0)
        | ((supported & (NetOffloads.Csum | NetOffloads.Tso4)) == (NetOffloads.Csum | NetOffloads.Tso4) ? GuestTso4 : 0)
        | ((supported & (NetOffloads.Csum | NetOffloads.Tso6)) == (NetOffloads.Csum | NetOffloads.Tso6) ? GuestTso6 : 0)
        | ((supported & (NetOffloads.Csum | NetOffloads.Ecn)) == (NetOffloads.Csum | NetOffloads.Ecn)
           && (supported & (NetOffloads.Tso4 | NetOffloads.Tso6)) != 0 ? GuestEcn : 0);

    /// <summary>The backend offloads to enable for what the driver negotiated, honouring the spec's dependencies
    /// (TSO needs GUEST_CSUM, ECN needs TSO) even if a careless driver did not.</summary>
    public static NetOffloads OffloadsFor(ulong driverFeatures)
    {
        if ((driverFeatures & GuestCsum) == 0)
            return NetOffloads.None;
        var o = NetOffloads.Csum;
        if ((driverFeatures & GuestTso4) != 0)
            o |= NetOffloads.Tso4;
        if ((driverFeatures & GuestTso6) != 0)
            o |= NetOffloads.Tso6;
        if ((driverFeatures & GuestEcn) != 0 && (o & (NetOffloads.Tso4 | NetOffloads.Tso6)) != 0)
            o |= NetOffloads.Ecn;
        return o;
    }
}
