namespace Kiln.Boot;

/// <summary>Where the loaders put their tables in low guest memory. Public so the VMM can keep its own
/// structures (ACPI, firmware stubs) clear of them.</summary>
public static class BootLayout
{
    /// <summary>The boot GDT (both entry modes).</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Linux boot_params ("zero page"), one 4 KiB page.</summary>
    public const ulong ZeroPageAddress = 0x7000;

    /// <summary>Initial RSP for Linux entries: the stack page [0x8000, 0x9000) sits between the zero page and the
    /// page tables. The kernel switches to its own stack almost at once, but the entry code may push before.</summary>
    public const ulong LinuxBootStackTop = 0x8FF0;

    /// <summary>Identity-map page tables for Long64 entries: PML4, PDPT, then four page directories.</summary>
    public const ulong Pml4Address = 0x9000;
    public const ulong PdptAddress = 0xA000;
    public const ulong PageDirectoriesAddress = 0xB000;

    /// <summary>The multiboot information structure and everything it points to (mmap, module list, strings)
    /// except the command line.</summary>
    public const ulong MultibootInfoAddress = 0x10000;
    public const ulong MultibootInfoEnd = 0x20000;

    /// <summary>The kernel command line (Linux and multiboot), NUL terminated.</summary>
    public const ulong CommandLineAddress = 0x20000;
    public const ulong CommandLineAreaEnd = 0x30000;

    /// <summary>The MP floating pointer, followed by the MP configuration table, in the last KiB of base memory
    /// (one of the places Linux scans for "_MP_").</summary>
    public const ulong MpTableAddress = 0x9FC00;
    public const ulong BaseMemoryEnd = 0xA0000;

    /// <summary>Start of the BIOS area Linux expects to be reserved.</summary>
    public const ulong BiosAreaStart = 0xF0000;

    /// <summary>1 MiB: where a bzImage's protected-mode kernel goes, and the lowest address a kernel image may use.</summary>
    public const ulong KernelLoadAddress = 0x100000;
}
