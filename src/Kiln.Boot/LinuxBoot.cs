using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>What a Linux loader (bzImage or ELF vmlinux) has learnt about the kernel it placed.</summary>
/// <param name="EntryPoint">Physical address of the 64-bit entry point.</param>
/// <param name="KernelEnd">First byte above everything the kernel occupies early on.</param>
/// <param name="CmdlineSize">Longest command line the kernel accepts, excluding the NUL.</param>
/// <param name="InitrdAddrMax">Highest address (inclusive) an initrd may occupy.</param>
internal sealed record LinuxKernel(ulong EntryPoint, ulong KernelEnd, uint CmdlineSize, ulong InitrdAddrMax,
    string Description);

/// <summary>The part of a Linux 64-bit boot shared by bzImage and vmlinux: command line, initrd, memory map,
/// zero page, MP table, GDT and identity page tables, then the Long64 entry with RSI = the zero page.</summary>
public static class LinuxBoot
{
    /// <summary>Used when the user gives no command line: the serial console, reboot through the keyboard
    /// controller (no ACPI needed), and reboot rather than hang on a panic.</summary>
    public const string DefaultCommandLine = "console=ttyS0 reboot=k panic=1";

    internal static BootEntry Start(GuestMemory memory, BootRequest request, BootFile kernelFile, LinuxKernel kernel,
        BootParams bootParams)
    {
        bootParams.SetLoaderFields();
        bootParams.SetCommandLine(KernelCommandLine.Write(memory, kernelFile, request.CommandLine ?? DefaultCommandLine, kernel.CmdlineSize,
            "cmdline_size"));
        if (request.InitrdPath is { } initrdPath)
        {
            var (address, size) = LinuxInitrd.Load(memory, initrdPath, kernel.KernelEnd, kernel.InitrdAddrMax);
            bootParams.SetRamdisk(address, size);
        }
        bootParams.SetE820(E820Map.Build(memory));
        bootParams.WriteTo(memory);
        MpTable.Write(memory, request.CpuCount);
        Acpi.AcpiTables.Write(memory, request.CpuCount);
        var gdt = BootGdt.WriteLongMode(memory);
        ulong cr3 = IdentityPageTables.Write(memory);
        return gdt.Entry(CpuEntryMode.Long64, kernel.EntryPoint, kernel.Description) with
        {
            Rsi = BootLayout.ZeroPageAddress,
            Rsp = BootLayout.LinuxBootStackTop,
            Cr3 = cr3,
        };
    }
}
