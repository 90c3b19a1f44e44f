using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>The flat GDT a loader leaves at <see cref="BootLayout.GdtAddress"/> and the selectors the boot CPU
/// starts with. The VMM loads CS/DS/TR straight from <see cref="BootEntry"/>; the copy in memory is what a reload
/// of those selectors by the guest would find.</summary>
internal sealed record BootGdt(ushort Limit, ushort CodeSelector, ulong Code, ushort DataSelector, ulong Data,
    ushort TssSelector, ulong Tss)
{
    public const ulong Code64 = 0x00AF_9B00_0000_FFFF; // L=1, present, DPL 0, execute/read, accessed
    public const ulong Code32 = 0x00CF_9B00_0000_FFFF; // D=1, G=1, 4 GiB flat, execute/read, accessed
    public const ulong FlatData = 0x00CF_9300_0000_FFFF; // D/B=1, G=1, 4 GiB flat, read/write, accessed

    /// <summary>A busy TSS (type 0xB), not the "available" type 9: VMX refuses to enter a guest whose TR is not
    /// busy, and a busy descriptor is exactly what the GDT would hold after the guest's own LTR.</summary>
    public const ulong BusyTss = 0x008F_8B00_0000_FFFF;

    /// <summary>The Linux 64-bit boot protocol GDT: __BOOT_CS = 0x10, __BOOT_DS = 0x18, TSS at 0x20 (a 16-byte
    /// long-mode descriptor, so slot 5 holds its zero upper half).</summary>
    public static BootGdt WriteLongMode(GuestMemory memory) =>
        Write(memory, [0, 0, Code64, FlatData, BusyTss, 0], codeSelector: 0x10, dataSelector: 0x18, tssSelector: 0x20);

    /// <summary>The multiboot GDT: flat 32-bit code 0x08, data 0x10, TSS 0x18.</summary>
    public static BootGdt WriteProtectedMode(GuestMemory memory) =>
        Write(memory, [0, Code32, FlatData, BusyTss], codeSelector: 0x08, dataSelector: 0x10, tssSelector: 0x18);

    private static BootGdt Write(GuestMemory memory, ulong[] entries, ushort codeSelector, ushort dataSelector,
        ushort tssSelector)
    {
        var bytes = new byte[entries.Length * 8];
        for (int i = 0; i < entries.Length; i++)
            LittleEndian.Put64(bytes, i * 8, entries[i]);
        memory.Write(new GuestAddress(BootLayout.GdtAddress), bytes);
        return new BootGdt((ushort)(bytes.Length - 1), codeSelector, entries[codeSelector / 8], dataSelector,
            entries[dataSelector / 8], tssSelector, entries[tssSelector / 8]);
    }

    /// <summary>A <see cref="BootEntry"/> whose GDT fields describe this table; callers add the registers.</summary>
    public BootEntry Entry(CpuEntryMode mode, ulong rip, string description) => new()
    {
        Mode = mode,
        Rip = rip,
        GdtBase = new GuestAddress(BootLayout.GdtAddress),
        GdtLimit = Limit,
        CodeSelector = CodeSelector,
        CodeDescriptor = Code,
        DataSelector = DataSelector,
        DataDescriptor = Data,
        TssSelector = TssSelector,
        TssDescriptor = Tss,
        Description = description,
    };
}
