namespace Kiln.Vmm;

/// <summary>One virtio-blk disk: a raw file or block device.</summary>
public sealed record DiskConfig(string Path, bool ReadOnly = false, string? Serial = null);

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
