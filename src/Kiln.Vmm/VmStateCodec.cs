using Kiln.Devices.State;
using Kiln.Kvm;
using Kiln.Vmm.Cpu;

namespace Kiln.Vmm;

/// <summary>The VM-wide state KVM holds outside the vCPUs: the two PICs and the IOAPIC, the PIT, and the
/// kvmclock base.</summary>
public static class VmStateCodec
{
    private const byte Version = 1;
    private const uint PicMaster = 0, PicSlave = 1, IoApic = 2;

    public static void Save(VirtualMachine vm, StateWriter w)
    {
        w.WriteByte(Version);
        foreach (uint chip in new[] { PicMaster, PicSlave, IoApic })
            VcpuStateCodec.WriteStruct(w, vm.GetIrqchip(chip));
        VcpuStateCodec.WriteStruct(w, vm.GetPit2());
        var clock = vm.GetClock();
        w.WriteUInt64(clock.Clock);
    }

    public static void Restore(VirtualMachine vm, StateReader r)
    {
        r.ExpectVersion("vm", Version);
        var chips = new[] { VcpuStateCodec.ReadStruct<KvmIrqchip>(r), VcpuStateCodec.ReadStruct<KvmIrqchip>(r), VcpuStateCodec.ReadStruct<KvmIrqchip>(r) };
        var pit = VcpuStateCodec.ReadStruct<KvmPitState2>(r);
        ulong clock = r.ReadUInt64();
        for (uint i = 0; i < chips.Length; i++)
            if (BitConverter.ToUInt32(chips[i][..4]) != i)
                throw new StateFormatException($"irqchip state {i} names chip {BitConverter.ToUInt32(chips[i][..4])}");
        foreach (var chip in chips)
            vm.SetIrqchip(chip);
        vm.SetPit2(pit);
        vm.SetClock(new KvmClockData { Clock = clock });
    }
}
