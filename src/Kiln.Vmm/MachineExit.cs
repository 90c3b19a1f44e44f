namespace Kiln.Vmm;

/// <summary>Why a machine stopped.</summary>
public enum MachineExitKind
{
    /// <summary>The guest powered off (ACPI/PSCI-style system event, or an orderly shutdown).</summary>
    PowerOff,

    /// <summary>The guest asked for a reset (i8042, port 0xCF9, KVM reset event).</summary>
    Reset,

    /// <summary>The guest wrote the debug-exit port.</summary>
    DebugExit,

    /// <summary>A vCPU triple-faulted (KVM_EXIT_SHUTDOWN).</summary>
    TripleFault,

    /// <summary>The user stopped the VM (signal, Ctrl-A X).</summary>
    UserStop,

    /// <summary>KVM could not enter or emulate the guest, or the VMM failed.</summary>
    Error,

    /// <summary>The guest was live-migrated away and now runs on the destination; this VMM's copy is stale.</summary>
    Migrated,
}

public sealed record MachineExit(MachineExitKind Kind, int ExitCode, string Message)
{
    public static MachineExit PowerOff(string how) => new(MachineExitKind.PowerOff, 0, how);
    public static MachineExit Reset(string how) => new(MachineExitKind.Reset, 0, how);
    public static MachineExit DebugExit(int code, string how) => new(MachineExitKind.DebugExit, code, how);
    public static MachineExit TripleFault(string detail) => new(MachineExitKind.TripleFault, 1, detail);
    public static MachineExit UserStop(string how) => new(MachineExitKind.UserStop, 0, how);
    public static MachineExit Error(string detail) => new(MachineExitKind.Error, 1, detail);
    public static MachineExit Migrated(string detail) => new(MachineExitKind.Migrated, 0, detail);
}
