using System.Buffers.Binary;
using Kiln.Devices.State;
using Kiln.GuestTests.Support;
using Kiln.Kvm;
using Kiln.Vmm.Cpu;

namespace Kiln.GuestTests;

/// <summary>The local APIC timer's armed TSC deadline must survive a save and restore (snapshots, live migration):
/// a Linux guest in TSC-deadline mode that loses it waits for its next timer event forever.</summary>
public sealed class VcpuTimerStateTests
{
    private const uint MsrTsc = 0x10, MsrTscDeadline = 0x6E0;
    private const int ApicSpuriousVector = 0xF0, ApicLvtTimer = 0x320;

    private static ulong ReadMsr(Vcpu vcpu, uint index)
    {
        Span<KvmMsrEntry> entry = [new KvmMsrEntry { Index = index }];
        Assert.Equal(1, vcpu.GetMsrs(entry));
        return entry[0].Data;
    }

    private static void SetApicRegister(ref KvmLapicState lapic, int offset, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(((Span<byte>)lapic).Slice(offset, 4), value);

    private static (VirtualMachine Vm, Vcpu Vcpu) NewVcpu(global::Kiln.Kvm.Kvm kvm, KvmCpuidEntry2[] cpuid)
    {
        var vm = kvm.CreateVm();
        vm.CreateIrqchip();
        var vcpu = vm.CreateVcpu(0);
        VcpuInitializer.Initialize(vcpu, cpuid, 1);
        return (vm, vcpu);
    }

    [KvmFact]
    public void AnArmedTscDeadlineSurvivesSaveAndRestore()
    {
        using var kvm = global::Kiln.Kvm.Kvm.Open();
        var cpuid = kvm.GetSupportedCpuid();
        byte[] saved;
        ulong deadline;
        var (vmA, vcpuA) = NewVcpu(kvm, cpuid);
        using (vmA)
        using (vcpuA)
        {
            // As Linux arms it: APIC software-enabled, LVT timer in TSC-deadline mode, a deadline ahead of the TSC.
            var lapic = vcpuA.GetLapic();
            SetApicRegister(ref lapic, ApicSpuriousVector, 0x1FF);
            SetApicRegister(ref lapic, ApicLvtTimer, (2u << 17) | 0xEC);
            vcpuA.SetLapic(lapic);
            deadline = ReadMsr(vcpuA, MsrTsc) + 1_000_000_000_000;
            vcpuA.SetMsrs([new KvmMsrEntry { Index = MsrTscDeadline, Data = deadline }]);
            Assert.True(ReadMsr(vcpuA, MsrTscDeadline) == deadline, "this host's KVM has no TSC-deadline timer to test");
            var w = new StateWriter();
            VcpuStateCodec.Save(vcpuA, kvm.GetMsrIndexList(), w);
            saved = w.ToArray();
        }
        var (vmB, vcpuB) = NewVcpu(kvm, cpuid);
        using (vmB)
        using (vcpuB)
        {
            VcpuStateCodec.Restore(vcpuB, new StateReader(saved));
            Assert.Equal(deadline, ReadMsr(vcpuB, MsrTscDeadline));
        }
    }
}
