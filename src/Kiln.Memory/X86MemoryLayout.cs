namespace Kiln.Memory;

/// <summary>Where RAM goes in a PC's physical address space: below the 32-bit MMIO hole (where the IOAPIC,
/// LAPIC, PCI BARs and firmware live) and, for the rest, from 4 GiB up.</summary>
public static class X86MemoryLayout
{
    public const ulong MmioHoleStart = 0xC000_0000; // 3 GiB
    public const ulong FourGiB = 0x1_0000_0000;

    public static IReadOnlyList<(GuestAddress Start, ulong Size)> RamRegions(ulong ramBytes)
    {
        if (ramBytes < 1 << 20 || ramBytes % 4096 != 0)
            throw new GuestMemoryException($"guest memory must be a multiple of 4 KiB and at least 1 MiB (got {ramBytes})");
        if (ramBytes <= MmioHoleStart)
            return [(new GuestAddress(0), ramBytes)];
        return [(new GuestAddress(0), MmioHoleStart), (new GuestAddress(FourGiB), ramBytes - MmioHoleStart)];
    }
}
