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

    public const int MaxCpus = 255;
    public const string DefaultLinuxCommandLine = Boot.LinuxBoot.DefaultCommandLine;
}
