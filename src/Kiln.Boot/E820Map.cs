using Kiln.Memory;

namespace Kiln.Boot;

internal enum E820Type : uint
{
    Ram = 1,
    Reserved = 2,
}

internal readonly record struct E820Entry(ulong Address, ulong Size, E820Type Type)
{
    public const int EncodedSize = 20; // addr u64, size u64, type u32: the layout of boot_params and multiboot mmap
    public ulong End => Address + Size;
}

/// <summary>The guest's physical memory map as Linux (boot_params) and multiboot (mmap) see it, derived from
/// the RAM regions: the PC low-memory holes are carved out of the region at 0, everything else is RAM.</summary>
internal static class E820Map
{
    public static IReadOnlyList<E820Entry> Build(GuestMemory memory)
    {
        LowRamEnd(memory); // validates that RAM starts at 0 and covers the first 1 MiB
        var map = new List<E820Entry>
        {
            new(0, BootLayout.MpTableAddress, E820Type.Ram),
            // The last KiB of base memory holds the MP table; the kernel must not reuse it.
            new(BootLayout.MpTableAddress, BootLayout.BaseMemoryEnd - BootLayout.MpTableAddress, E820Type.Reserved),
            // The BIOS area: Linux expects it reserved and looks there for firmware tables.
            new(BootLayout.BiosAreaStart, BootLayout.KernelLoadAddress - BootLayout.BiosAreaStart, E820Type.Reserved),
        };
        var firstRegion = memory.Regions[0];
        if (firstRegion.End.Value > BootLayout.KernelLoadAddress)
            map.Add(new(BootLayout.KernelLoadAddress, firstRegion.End.Value - BootLayout.KernelLoadAddress, E820Type.Ram));
        foreach (var region in memory.Regions.Skip(1))
            map.Add(new(region.Start.Value, region.Size, E820Type.Ram));
        return map;
    }

    /// <summary>The end of the RAM that runs contiguously from address 0, capped at 4 GiB: the top for anything
    /// a 32-bit field must point at (initrd, multiboot modules) and the extent of mem_upper.</summary>
    public static ulong LowRamEnd(GuestMemory memory)
    {
        var regions = memory.Regions;
        if (regions.Count == 0 || regions[0].Start.Value != 0 || regions[0].Size < BootLayout.KernelLoadAddress)
            throw new BootException("guest RAM must start at address 0 and cover at least the first 1 MiB");
        ulong end = regions[0].End.Value;
        for (int i = 1; i < regions.Count && regions[i].Start.Value == end; i++)
            end = regions[i].End.Value;
        return Math.Min(end, X86MemoryLayout.FourGiB);
    }

    /// <summary>Serialises an entry as a 20-byte (addr, size, type) record.</summary>
    public static void Put(Span<byte> destination, E820Entry entry)
    {
        LittleEndian.Put64(destination, 0, entry.Address);
        LittleEndian.Put64(destination, 8, entry.Size);
        LittleEndian.Put32(destination, 16, (uint)entry.Type);
    }
}
