using System.Text;
using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>A boot module handed to a multiboot kernel: [Start, End) in guest memory plus its string.</summary>
internal readonly record struct MultibootModule(ulong Start, ulong End, string Name);

/// <summary>The multiboot information structure (Multiboot Specification 0.6.96, section 3.3) and the data it
/// points to, laid out in [<see cref="BootLayout.MultibootInfoAddress"/>, <see cref="BootLayout.MultibootInfoEnd"/>).</summary>
internal static class MultibootInfo
{
    public const uint BootMagic = 0x2BAD_B002;

    public const uint FlagMemory = 1 << 0;
    public const uint FlagCommandLine = 1 << 2;
    public const uint FlagModules = 1 << 3;
    public const uint FlagMemoryMap = 1 << 6;
    public const uint FlagBootLoaderName = 1 << 9;

    public const int InfoSize = 116; // through the framebuffer fields
    public const int ModuleEntrySize = 16;
    public const int MemoryMapEntrySize = 4 + E820Entry.EncodedSize; // "size" field, then the entry it counts

    /// <summary>KiB of lower memory. 640 like QEMU and GRUB on a plain PC, although the last KiB of it is marked
    /// reserved in the memory map (it holds the MP table on Linux boots); the mmap is the precise source.</summary>
    public const uint MemLowerKiB = 640;

    public const string BootLoaderName = "kiln";

    /// <summary>Writes the structure; returns its guest address (for EBX).</summary>
    public static ulong Write(GuestMemory memory, ulong commandLineAddress, MultibootModule? module,
        IReadOnlyList<E820Entry> memoryMap)
    {
        var area = new byte[BootLayout.MultibootInfoEnd - BootLayout.MultibootInfoAddress];
        int next = Align8(InfoSize);
        uint Place(int size)
        {
            int offset = next;
            if (size > area.Length - offset)
                throw new BootException("the multiboot information does not fit in its 64 KiB area (module name too long?)");
            next = Align8(offset + size);
            return (uint)(BootLayout.MultibootInfoAddress + (ulong)offset);
        }
        int OffsetOf(uint address) => (int)(address - BootLayout.MultibootInfoAddress);
        uint PlaceString(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s + "\0");
            uint address = Place(bytes.Length);
            bytes.CopyTo(area, OffsetOf(address));
            return address;
        }

        Span<byte> info = area.AsSpan(0, InfoSize);
        LittleEndian.Put32(info, 0, FlagMemory | FlagCommandLine | FlagModules | FlagMemoryMap | FlagBootLoaderName);
        LittleEndian.Put32(info, 4, MemLowerKiB);
        ulong upperKiB = (E820Map.LowRamEnd(memory) - BootLayout.KernelLoadAddress) / 1024;
        LittleEndian.Put32(info, 8, (uint)Math.Min(upperKiB, uint.MaxValue));
        LittleEndian.Put32(info, 16, (uint)commandLineAddress);

        uint modules = Place(ModuleEntrySize);
        LittleEndian.Put32(info, 20, module is null ? 0u : 1u);
        LittleEndian.Put32(info, 24, modules);
        if (module is { } m)
        {
            uint name = PlaceString(m.Name);
            Span<byte> entry = area.AsSpan(OffsetOf(modules), ModuleEntrySize);
            LittleEndian.Put32(entry, 0, (uint)m.Start);
            LittleEndian.Put32(entry, 4, (uint)m.End); // exclusive: the first byte after the module
            LittleEndian.Put32(entry, 8, name);
        }

        uint mmap = Place(MemoryMapEntrySize * memoryMap.Count);
        for (int i = 0; i < memoryMap.Count; i++)
        {
            Span<byte> entry = area.AsSpan(OffsetOf(mmap) + i * MemoryMapEntrySize, MemoryMapEntrySize);
            LittleEndian.Put32(entry, 0, E820Entry.EncodedSize); // size of the rest of the entry
            E820Map.Put(entry[4..], memoryMap[i]);
        }
        LittleEndian.Put32(info, 44, (uint)(MemoryMapEntrySize * memoryMap.Count));
        LittleEndian.Put32(info, 48, mmap);

        LittleEndian.Put32(info, 64, PlaceString(BootLoaderName));

        memory.Write(new GuestAddress(BootLayout.MultibootInfoAddress), area.AsSpan(0, next));
        return BootLayout.MultibootInfoAddress;
    }

    private static int Align8(int value) => (value + 7) & ~7;
}
