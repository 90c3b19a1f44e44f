using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>A piece of a kernel image: file bytes copied to a guest-physical address, followed by zeroed
/// memory up to <see cref="MemorySize"/> (the bss).</summary>
internal readonly record struct ImageSegment(ulong FileOffset, ulong FileSize, ulong Address, ulong MemorySize)
{
    public ulong End => Address + MemorySize;
}

/// <summary>Validates and loads a kernel's segments (ELF PT_LOADs or a multiboot address-field image). Nothing is
/// written until all of them are known to lie in the file, in RAM, in the allowed window, and apart.</summary>
internal static class ImageSegments
{
    /// <summary>Loads the segments; returns the end of the highest one.</summary>
    /// <param name="lowest">No segment may start below this (low memory holds the loader's own tables).</param>
    /// <param name="limit">No segment may extend past this (e.g. 4 GiB for a 32-bit or identity-mapped entry).</param>
    public static ulong Load(GuestMemory memory, BootFile file, IReadOnlyList<ImageSegment> segments, ulong lowest,
        ulong limit)
    {
        if (segments.Count == 0)
            throw file.Fail("the image has nothing to load");
        foreach (var s in segments)
            Validate(memory, file, s, lowest, limit);
        var sorted = segments.OrderBy(s => s.Address).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            if (sorted[i].Address < sorted[i - 1].End)
                throw file.Fail($"segments at 0x{sorted[i - 1].Address:x} and 0x{sorted[i].Address:x} overlap");

        foreach (var s in segments)
        {
            file.CopyToGuest(memory, s.FileOffset, s.FileSize, new GuestAddress(s.Address), "segment");
            memory.Fill(new GuestAddress(s.Address + s.FileSize), s.MemorySize - s.FileSize, 0);
        }
        return sorted[^1].End;
    }

    private static void Validate(GuestMemory memory, BootFile file, ImageSegment s, ulong lowest, ulong limit)
    {
        if (s.FileSize > s.MemorySize)
            throw file.Fail($"segment at 0x{s.Address:x} has more file bytes ({s.FileSize:#,0}) than memory ({s.MemorySize:#,0})");
        if (s.FileOffset > (ulong)file.Length || s.FileSize > (ulong)file.Length - s.FileOffset)
            throw file.Truncated($"segment at 0x{s.Address:x}", s.FileOffset + s.FileSize);
        if (s.MemorySize > ulong.MaxValue - s.Address || s.Address < lowest || s.End > limit)
            throw file.Fail($"segment [0x{s.Address:x}, +0x{s.MemorySize:x}) is outside the loadable range " +
                $"[0x{lowest:x}, 0x{limit:x})");
        if (!memory.IsValid(new GuestAddress(s.Address), s.MemorySize))
            throw file.Fail($"segment [0x{s.Address:x}, +0x{s.MemorySize:x}) does not fit in guest RAM (kernel too large for memory)");
    }
}
