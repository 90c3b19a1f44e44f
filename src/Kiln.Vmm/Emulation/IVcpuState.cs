using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>What the fallback emulator may see and change of one stopped vCPU. The KVM-backed implementation
/// (<see cref="KvmVcpuState"/>) is a thin layer over ioctls and guest RAM; unit tests use a fake.</summary>
public interface IVcpuState
{
    KvmRegs GetRegs();
    void SetRegs(in KvmRegs regs);
    KvmSregs GetSregs();
    void SetSregs(in KvmSregs sregs);

    /// <summary>One model-specific register (KVM_GET_MSRS); 0 when KVM does not have it.</summary>
    ulong GetMsr(uint index);

    /// <summary>The vCPU's extended state in the standard (non-compacted) XSAVE format, as KVM_GET_XSAVE returns it:
    /// legacy FXSAVE region at 0, header (XSTATE_BV, XCOMP_BV) at 512, components at their standard offsets.</summary>
    byte[] GetXsave();
    void SetXsave(byte[] xsave);
    ulong GetXcr0();

    /// <summary>Standard-format offset, size and compacted-format 64-byte alignment of XSAVE component
    /// <paramref name="index"/> (&gt;= 2), or null when the CPU does not have it.</summary>
    XsaveComponent? GetXsaveComponent(int index);

    /// <summary>Walks the guest page tables for one linear address (KVM_TRANSLATE).</summary>
    PageTranslation Translate(ulong linear);

    /// <summary>Reads guest-physical RAM; false (and nothing read) when any byte lies outside RAM.</summary>
    bool TryReadPhysical(ulong physical, Span<byte> destination);

    /// <summary>Writes guest-physical RAM; false (and nothing written) when any byte lies outside RAM.</summary>
    bool TryWritePhysical(ulong physical, ReadOnlySpan<byte> source);

    /// <summary>Makes the guest take an exception on its next entry (with CR2 set first for a #PF).</summary>
    void InjectException(GuestException exception);
}

/// <summary>Result of a page walk: <see cref="Valid"/> is false for a not-present mapping.</summary>
public readonly record struct PageTranslation(bool Valid, ulong Physical, bool Writable, bool User);

public readonly record struct XsaveComponent(int Offset, int Size, bool Align64);

/// <summary>An exception the emulated instruction raises in the guest.</summary>
public readonly record struct GuestException(byte Vector, uint? ErrorCode = null, ulong? Cr2 = null)
{
    public const byte DivideError = 0, Breakpoint = 3, InvalidOpcode = 6, DeviceNotAvailable = 7,
        GeneralProtection = 13, PageFault = 14, X87Error = 16;

    public override string ToString() => Vector switch
    {
        Breakpoint => "#BP",
        InvalidOpcode => "#UD",
        DeviceNotAvailable => "#NM",
        GeneralProtection => $"#GP({ErrorCode ?? 0})",
        PageFault => $"#PF(0x{ErrorCode ?? 0:x}, cr2 0x{Cr2 ?? 0:x})",
        X87Error => "#MF",
        _ => $"exception {Vector}",
    };
}
