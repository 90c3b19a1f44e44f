namespace Kiln.Virtio;

/// <summary>Transport-independent feature bits (virtio 1.x section 6).</summary>
public static class VirtioFeatures
{
    public const ulong RingIndirectDesc = 1UL << 28;
    public const ulong RingEventIdx = 1UL << 29;
    public const ulong Version1 = 1UL << 32;

    /// <summary>What every Kiln device offers on top of its own bits.</summary>
    public const ulong Common = RingIndirectDesc | RingEventIdx | Version1;
}
