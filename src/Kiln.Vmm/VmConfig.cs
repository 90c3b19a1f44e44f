namespace Kiln.Vmm;

/// <summary>Everything a user can ask of one VM; what the CLI, a domain definition or an API call turn into.</summary>
public sealed record VmConfig
{
    public required string KernelPath { get; init; }
    public string? InitrdPath { get; init; }

    /// <summary>The kernel command line; null means the default for the kernel's kind.</summary>
    public string? CommandLine { get; init; }

    public ulong MemoryBytes { get; init; } = 512UL << 20;
    public int CpuCount { get; init; } = 1;

    /// <summary>The QEMU isa-debug-exit compatible port; null disables it.</summary>
    public ushort? DebugExitPort { get; init; } = 0xF4;

    /// <summary>On a guest reset, exit instead of rebooting (QEMU's -no-reboot).</summary>
    public bool NoReboot { get; init; }

    /// <summary>virtio-blk disks, in the order the guest sees them (vda, vdb, ...).</summary>
    public IReadOnlyList<DiskConfig> Disks { get; init; } = [];

    /// <summary>virtio-net NICs on TAP interfaces, in the order the guest sees them.</summary>
    public IReadOnlyList<Virtio.Net.NetDeviceOptions> Nics { get; init; } = [];

    /// <summary>A virtio-rng device fed by the host's random number generator.</summary>
    public bool Rng { get; init; }

    /// <summary>Where the user's terminal is attached: the COM1 UART, or a virtio-console (hvc0).</summary>
    public ConsoleKind Console { get; init; } = ConsoleKind.Serial;

    /// <summary>How virtio devices are presented: modern virtio-pci, or virtio-mmio announced on the command line.</summary>
    public VirtioTransportKind Transport { get; init; } = VirtioTransportKind.Pci;

    public const int MaxCpus = 255;
    public const string DefaultLinuxCommandLine = Boot.LinuxBoot.DefaultCommandLine;
}
