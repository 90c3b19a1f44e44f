namespace Kiln.Kvm;

/// <summary>KVM_CAP_* numbers (linux/kvm.h) that Kiln checks before use.</summary>
public enum KvmCap
{
    Irqchip = 0,
    Hlt = 1,
    UserMemory = 3,
    SetTssAddr = 4,
    ExtCpuid = 7,
    Pit = 11,
    NopIoDelay = 12,
    SyncMmu = 16,
    Pit2 = 33,
    SetIdentityMapAddr = 37,
    AdjustClock = 39,
    IrqRouting = 25,
    Irqfd = 32,
    Ioeventfd = 36,
    PitState2 = 35,
    VcpuEvents = 41,
    Debugregs = 50,
    Xsave = 55,
    Xcrs = 56,
    TscControl = 60,
    GetTscKhz = 61,
    SignalMsi = 77,
    ImmediateExit = 136,
    NrMemslots = 10,
    MaxVcpus = 66,
    NrVcpus = 9,
}
