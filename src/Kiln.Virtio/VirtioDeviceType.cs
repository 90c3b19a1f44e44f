namespace Kiln.Virtio;

/// <summary>Virtio device IDs (virtio 1.x section 5).</summary>
public enum VirtioDeviceType : uint
{
    Net = 1,
    Block = 2,
    Console = 3,
    Rng = 4,
}
