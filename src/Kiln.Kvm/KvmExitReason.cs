namespace Kiln.Kvm;

/// <summary>KVM_EXIT_* values of kvm_run.exit_reason.</summary>
public enum KvmExitReason : uint
{
    Unknown = 0,
    Exception = 1,
    Io = 2,
    Hypercall = 3,
    Debug = 4,
    Hlt = 5,
    Mmio = 6,
    IrqWindowOpen = 7,
    Shutdown = 8,
    FailEntry = 9,
    Intr = 10,
    SetTpr = 11,
    TprAccess = 12,
    Nmi = 16,
    InternalError = 17,
    SystemEvent = 24,
    IoapicEoi = 26,
    X86Rdmsr = 29,
    X86Wrmsr = 30,
    DirtyRingFull = 31,
}

/// <summary>kvm_run.system_event.type.</summary>
public enum KvmSystemEvent : uint
{
    Shutdown = 1,
    Reset = 2,
    Crash = 3,
    Wakeup = 4,
    Suspend = 5,
    Sev = 6,
}

/// <summary>kvm_mp_state values.</summary>
public enum KvmMpState : uint
{
    Runnable = 0,
    Uninitialized = 1,
    InitReceived = 2,
    Halted = 3,
    SipiReceived = 4,
}
