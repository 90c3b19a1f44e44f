using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Boots an uncompressed ELF64 vmlinux directly at startup_64: PT_LOAD segments at their physical
/// addresses, a zero page built from scratch (there is no setup header to copy), Long64 entry.</summary>
internal static class ElfKernelLoader
{
    /// <summary>__START_KERNEL_map: a virtual e_entry is this much above its physical address.</summary>
    private const ulong KernelVirtualBase = 0xFFFF_FFFF_8000_0000;

    // What a current bzImage declares; vmlinux carries no header, so the zero page gets these.
    private const ushort ProtocolVersion = 0x020F;
    private const uint KernelAlignment = 0x100_0000;
    private const uint CmdlineSize = 2047; // COMMAND_LINE_SIZE (2048) minus the NUL, as bzImages report it
    private const uint InitrdAddrMax = 0x7FFF_FFFF;

    public static BootEntry Load(GuestMemory memory, BootFile file, BootRequest request)
    {
        var elf = ElfFile.Parse(file);
        if (elf.Class != ElfClass.Elf64 || elf.Machine != ElfFile.MachineX86_64)
            throw file.Fail($"{elf.ClassText} file for machine {elf.Machine} is not an x86-64 (ELF64, EM_X86_64) " +
                "vmlinux and has no multiboot header");
        var segments = elf.LoadSegments
            .Select(s => new ImageSegment(s.Offset, s.FileSize, s.PhysicalAddress, s.MemorySize))
            .ToArray();
        // Identity-mapped entry: the kernel must lie in the mapped 4 GiB (and in RAM, which ends below the hole).
        ulong kernelEnd = ImageSegments.Load(memory, file, segments, BootLayout.KernelLoadAddress,
            E820Map.LowRamEnd(memory));

        ulong entry = elf.Entry >= KernelVirtualBase ? elf.Entry - KernelVirtualBase : elf.Entry;
        if (!segments.Any(s => entry >= s.Address && entry < s.Address + s.FileSize))
            throw file.Fail($"entry point 0x{elf.Entry:x} is not inside a loaded segment");

        var kernel = new LinuxKernel(entry, kernelEnd, CmdlineSize, InitrdAddrMax, $"ELF vmlinux (entry 0x{entry:x})");
        var bootParams = BootParams.Synthesized(ProtocolVersion, KernelAlignment, CmdlineSize, InitrdAddrMax);
        return LinuxBoot.Start(memory, request, file, kernel, bootParams);
    }
}
