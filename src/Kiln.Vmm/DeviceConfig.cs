namespace Kiln.Vmm;

/// <summary>One virtio-blk disk: a raw file, block device or qcow2 image. <see cref="Format"/> null: probed.</summary>
public sealed record DiskConfig(string Path, bool ReadOnly = false, string? Serial = null, string? Format = null);

public enum ConsoleKind
{
    Serial,
    Virtio,
}

public enum VirtioTransportKind
{
    Pci,
    Mmio,
}
