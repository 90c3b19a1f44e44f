using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Boots a multiboot v1 kernel: the image (by the header's address fields, or else its ELF program
/// headers) at 1 MiB or above, the initrd as module 0 right after it, the information structure in low memory,
/// and a 32-bit protected-mode entry with EAX = 0x2BADB002 and EBX = the structure's address.</summary>
internal static class MultibootLoader
{
    public static BootEntry Load(GuestMemory memory, BootFile file, MultibootHeader header, BootRequest request)
    {
        uint unsupported = header.Flags & MultibootHeader.RequiredFlagsMask & ~MultibootHeader.SupportedRequiredFlags;
        if ((unsupported & MultibootHeader.FlagVideoMode) != 0)
            throw file.Fail("the multiboot header requires a video mode (flag bit 2), which Kiln cannot provide");
        if (unsupported != 0)
            throw file.Fail($"the multiboot header requires features Kiln does not know (flags 0x{unsupported:x})");
        if (!header.IsComplete)
            throw file.Fail($"the multiboot header at offset 0x{header.FileOffset:x} declares address fields " +
                "but they do not fit in the first 8 KiB of the file");

        // 32-bit entry without paging: everything must lie below 4 GiB, which the end of low RAM already is. Low
        // memory is kept for the GDT, the information structure and the command line.
        ulong lowest = BootLayout.KernelLoadAddress;
        ulong limit = E820Map.LowRamEnd(memory);
        var (entry, imageEnd, kind) = header.HasAddressFields
            ? LoadByAddressFields(memory, file, header, lowest, limit)
            : LoadElf(memory, file, lowest, limit);

        ulong commandLine = KernelCommandLine.Write(memory, file, request.CommandLine ?? "", ulong.MaxValue,
            "the size of Kiln's command line area");
        MultibootModule? module = request.InitrdPath is { } path ? LoadModule(memory, path, imageEnd, limit) : null;
        ulong info = MultibootInfo.Write(memory, commandLine, module, E820Map.Build(memory));
        var gdt = BootGdt.WriteProtectedMode(memory);
        return gdt.Entry(CpuEntryMode.Protected32, entry, $"multiboot {kind} (entry 0x{entry:x})") with
        {
            Rax = MultibootInfo.BootMagic,
            Rbx = info,
        };
    }

    /// <summary>The a.out-kludge layout: header_addr is where the header itself lands, which fixes where the
    /// file's bytes from load_addr onwards come from.</summary>
    private static (ulong Entry, ulong ImageEnd, string Kind) LoadByAddressFields(GuestMemory memory, BootFile file,
        MultibootHeader h, ulong lowest, ulong limit)
    {
        if (h.LoadAddr > h.HeaderAddr)
            throw file.Fail($"multiboot load_addr 0x{h.LoadAddr:x} is above header_addr 0x{h.HeaderAddr:x}");
        ulong headerDistance = h.HeaderAddr - h.LoadAddr;
        if (headerDistance > (ulong)h.FileOffset)
            throw file.Fail($"multiboot header_addr - load_addr (0x{headerDistance:x}) reaches before the start of the file");
        ulong fileOffset = (ulong)h.FileOffset - headerDistance;
        ulong loadEnd = h.LoadEndAddr == 0 ? h.LoadAddr + ((ulong)file.Length - fileOffset) : h.LoadEndAddr;
        if (loadEnd < (ulong)h.HeaderAddr + 12)
            throw file.Fail($"multiboot load_end_addr 0x{loadEnd:x} does not cover the header at 0x{h.HeaderAddr:x}");
        ulong bssEnd = h.BssEndAddr == 0 ? loadEnd : h.BssEndAddr;
        if (bssEnd < loadEnd)
            throw file.Fail($"multiboot bss_end_addr 0x{bssEnd:x} is below load_end_addr 0x{loadEnd:x}");
        if (h.EntryAddr < h.LoadAddr || h.EntryAddr >= loadEnd)
            throw file.Fail($"multiboot entry_addr 0x{h.EntryAddr:x} is outside the loaded image " +
                $"[0x{h.LoadAddr:x}, 0x{loadEnd:x})");
        ulong fileBytes = loadEnd - h.LoadAddr;
        var segment = new ImageSegment(fileOffset, fileBytes, h.LoadAddr, bssEnd - h.LoadAddr);
        ulong end = ImageSegments.Load(memory, file, [segment], lowest, limit);
        return (h.EntryAddr, end, "kernel (address fields)");
    }

    private static (ulong Entry, ulong ImageEnd, string Kind) LoadElf(GuestMemory memory, BootFile file, ulong lowest,
        ulong limit)
    {
        if (!ElfFile.HasMagic(file.ReadHead(4)))
            throw file.Fail("the multiboot header has no address fields (flag bit 16) and the file is not ELF");
        var elf = ElfFile.Parse(file);
        if (elf.Machine is not (ElfFile.MachineI386 or ElfFile.MachineX86_64))
            throw file.Fail($"multiboot {elf.ClassText} file is for machine {elf.Machine}, not x86");
        var loads = elf.LoadSegments.ToArray();
        var segments = loads.Select(s => new ImageSegment(s.Offset, s.FileSize, s.PhysicalAddress, s.MemorySize)).ToArray();
        ulong end = ImageSegments.Load(memory, file, segments, lowest, limit);

        // Paging is off at entry, so a virtual e_entry must become the physical address it is loaded at.
        var holder = loads.FirstOrDefault(s => elf.Entry >= s.VirtualAddress && elf.Entry - s.VirtualAddress < s.FileSize);
        if (holder.MemorySize == 0)
            throw file.Fail($"entry point 0x{elf.Entry:x} is not inside a loaded segment");
        ulong entry = holder.PhysicalAddress + (elf.Entry - holder.VirtualAddress);
        return (entry, end, elf.ClassText + " kernel");
    }

    private static MultibootModule LoadModule(GuestMemory memory, string path, ulong imageEnd, ulong limit)
    {
        using var initrd = BootFile.Open(path, "initrd");
        ulong start = Align.Up(imageEnd, Align.Page);
        ulong size = (ulong)initrd.Length;
        if (start > limit || size > limit - start)
            throw initrd.Fail($"module of {size:#,0} bytes does not fit in guest RAM after the kernel " +
                $"(from 0x{start:x} to the end of RAM below 4 GiB at 0x{limit:x})");
        initrd.CopyToGuest(memory, 0, size, new GuestAddress(start), "module");
        return new MultibootModule(start, start + size, path);
    }
}
