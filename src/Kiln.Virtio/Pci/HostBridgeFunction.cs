namespace Kiln.Virtio.Pci;

/// <summary>Device 00:00.0, the host bridge itself (class 06/00), so the guest sees a conventional bus 0.</summary>
internal sealed class HostBridgeFunction() : PciFunction(new PciConfigSpace(0x8086, 0x0D57, 0x06_00_00, 0))
{
    public override string Name => "host bridge";
}
