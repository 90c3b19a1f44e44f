using System.Buffers.Binary;
using Kiln.Kvm;

namespace Kiln.Vmm.Cpu;

/// <summary>Per-vCPU set-up common to every boot: CPUID, the MSRs firmware would leave, a sane FPU, and the
/// local APIC's LINT0/LINT1 wired as on a PC (ExtINT from the PIC, NMI).</summary>
public static class VcpuInitializer
{
    private const uint MsrIa32Tsc = 0x10;
    private const uint MsrIa32MiscEnable = 0x1A0;
    private const uint MsrMtrrDefType = 0x2FF;
    private const ulong MiscEnableFastStrings = 1;
    private const ulong MtrrEnableWriteBack = (1 << 11) | 6;
    private const int ApicLvtLint0 = 0x350, ApicLvtLint1 = 0x360;
    private const uint DeliveryExtInt = 7 << 8, DeliveryNmi = 4 << 8;

    public static void Initialize(Vcpu vcpu, ReadOnlySpan<KvmCpuidEntry2> supportedCpuid, int cpuCount)
    {
        vcpu.SetCpuid(CpuidBuilder.Build(supportedCpuid, vcpu.Id, cpuCount));
        SetBootMsrs(vcpu);
        vcpu.SetFpu(new KvmFpu { Fcw = 0x37F, Mxcsr = 0x1F80 });
        var lapic = vcpu.GetLapic();
        SetLvt(lapic, ApicLvtLint0, DeliveryExtInt);
        SetLvt(lapic, ApicLvtLint1, DeliveryNmi);
        vcpu.SetLapic(lapic);
    }

    private static void SetLvt(Span<byte> lapic, int offset, uint deliveryMode)
    {
        uint lvt = BinaryPrimitives.ReadUInt32LittleEndian(lapic[offset..]);
        lvt = (lvt & ~0x700u & ~(1u << 16)) | deliveryMode; // delivery mode bits 8-10, unmasked
        BinaryPrimitives.WriteUInt32LittleEndian(lapic[offset..], lvt);
    }

    /// <summary>Sets what KVM accepts; a host that refuses an optional MSR (PVM refuses some) is not an error.</summary>
    private static void SetBootMsrs(Vcpu vcpu)
    {
        KvmMsrEntry[] wanted =
        [
            new() { Index = MsrIa32MiscEnable, Data = MiscEnableFastStrings },
            new() { Index = MsrMtrrDefType, Data = MtrrEnableWriteBack },
            new() { Index = MsrIa32Tsc, Data = 0 },
        ];
        foreach (var msr in wanted)
        {
            try
            {
                vcpu.SetMsrs([msr]);
            }
            catch (KvmException e)
            {
                KilnLog.Debug($"vCPU {vcpu.Id}: MSR 0x{msr.Index:x} not set: {e.Message}");
            }
        }
    }
}
