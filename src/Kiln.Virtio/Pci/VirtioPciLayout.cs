namespace Kiln.Virtio.Pci;

/// <summary>Where a virtio-pci function keeps its structures: the capabilities in configuration space and the regions
/// of BAR 0 (a 64-bit memory BAR) they point to.</summary>
public static class VirtioPciLayout
{
    public const ushort VendorId = 0x1AF4;
    public const ushort DeviceIdBase = 0x1040;

    public const int Bar = 0;
    public const ulong BarSize = 0x8000;

    public const ulong CommonOffset = 0x0000, CommonLength = 0x38;
    public const ulong IsrOffset = 0x1000, IsrLength = 1;
    public const ulong DeviceOffset = 0x2000, DeviceLength = 0x1000;
    public const ulong NotifyOffset = 0x3000, NotifyLength = 0x1000;
    public const uint NotifyOffMultiplier = 4;
    public const ulong MsixTableOffset = 0x4000;
    public const ulong MsixPbaOffset = 0x5000;

    // Capabilities in configuration space.
    public const int CommonCap = 0x40, NotifyCap = 0x50, IsrCap = 0x64, DeviceCap = 0x74, MsixCap = 0x84, PciCfgCap = 0x90;
    public const byte VendorCapId = 0x09, MsixCapId = 0x11;
    public const byte CfgTypeCommon = 1, CfgTypeNotify = 2, CfgTypeIsr = 3, CfgTypeDevice = 4, CfgTypePci = 5;

    public const ushort MsixEnable = 0x8000, MsixFunctionMask = 0x4000;

    /// <summary>PCI class codes (base/sub/interface) per device type.</summary>
    public static uint ClassCode(VirtioDeviceType type) => type switch
    {
        VirtioDeviceType.Net => 0x02_00_00,
        VirtioDeviceType.Block => 0x01_80_00,
        VirtioDeviceType.Console => 0x07_80_00,
        _ => 0xFF_00_00,
    };
}
