using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>What to boot: the user's kernel, optional initrd (for multiboot: module 0), command line and CPU count.
/// A null command line means the default for the kernel's kind (<see cref="LinuxBoot.DefaultCommandLine"/> for
/// Linux, empty for multiboot).</summary>
public sealed record BootRequest(string KernelPath, string? InitrdPath, string? CommandLine, int CpuCount);

/// <summary>How the boot CPU enters the loaded kernel.</summary>
public enum CpuEntryMode
{
    /// <summary>32-bit protected mode, paging off (multiboot).</summary>
    Protected32,

    /// <summary>64-bit long mode with identity-mapped page tables (Linux 64-bit boot protocol).</summary>
    Long64,
}

/// <summary>The boot CPU's entry state, written by a loader after it has placed the kernel, its tables and a GDT
/// in guest memory. The descriptors are the raw 8-byte GDT entries the selectors refer to, so the VMM can load
/// segment registers that agree with the in-memory GDT.</summary>
public sealed record BootEntry
{
    public required CpuEntryMode Mode { get; init; }
    public required ulong Rip { get; init; }
    public ulong Rax { get; init; }
    public ulong Rbx { get; init; }
    public ulong Rsi { get; init; }
    public ulong Rsp { get; init; }

    /// <summary>Page-table root for <see cref="CpuEntryMode.Long64"/>; 0 otherwise.</summary>
    public ulong Cr3 { get; init; }

    public required GuestAddress GdtBase { get; init; }
    public required ushort GdtLimit { get; init; }
    public required ushort CodeSelector { get; init; }
    public required ulong CodeDescriptor { get; init; }
    public required ushort DataSelector { get; init; }
    public required ulong DataDescriptor { get; init; }
    public required ushort TssSelector { get; init; }
    public required ulong TssDescriptor { get; init; }

    /// <summary>A short description for logs, e.g. "bzImage 6.1.0 (protocol 2.15)".</summary>
    public string Description { get; init; } = "";
}

/// <summary>The kernel (or initrd) file cannot be booted; the message names the file and the reason.</summary>
public sealed class BootException(string message, Exception? inner = null) : KilnException(message, inner);
