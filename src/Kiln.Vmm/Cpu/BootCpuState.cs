using Kiln.Boot;
using Kiln.Kvm;

namespace Kiln.Vmm.Cpu;

/// <summary>Puts the boot vCPU into the state a loader asked for: 32-bit protected mode (multiboot) or 64-bit
/// long mode with paging (Linux 64-bit boot protocol).</summary>
public static class BootCpuState
{
    private const ulong Cr0Pe = 1, Cr0Et = 1 << 4, Cr0Pg = 1UL << 31;
    private const ulong Cr4Pae = 1 << 5;
    private const ulong EferLme = 1 << 8, EferLma = 1 << 10;
    private const ulong RflagsReserved = 1 << 1;

    public static void Apply(Vcpu vcpu, BootEntry entry)
    {
        var sregs = vcpu.GetSregs();
        ApplySegments(ref sregs, entry);
        vcpu.SetSregs(sregs);
        vcpu.SetRegs(new KvmRegs
        {
            Rip = entry.Rip, Rax = entry.Rax, Rbx = entry.Rbx, Rsi = entry.Rsi, Rsp = entry.Rsp, Rflags = RflagsReserved,
        });
    }

    /// <summary>The sregs part, separate so a test can check it without a vCPU.</summary>
    public static void ApplySegments(ref KvmSregs sregs, BootEntry entry)
    {
        var code = SegmentMapper.FromDescriptor(entry.CodeSelector, entry.CodeDescriptor);
        var data = SegmentMapper.FromDescriptor(entry.DataSelector, entry.DataDescriptor);
        sregs.Cs = code;
        sregs.Ds = sregs.Es = sregs.Fs = sregs.Gs = sregs.Ss = data;
        sregs.Tr = SegmentMapper.FromDescriptor(entry.TssSelector, entry.TssDescriptor);
        sregs.Gdt = new KvmDtable { Base = entry.GdtBase.Value, Limit = entry.GdtLimit };
        sregs.Idt = new KvmDtable { Base = 0, Limit = 0 };
        if (entry.Mode == CpuEntryMode.Long64)
        {
            sregs.Cr0 = Cr0Pe | Cr0Et | Cr0Pg;
            sregs.Cr3 = entry.Cr3;
            sregs.Cr4 = Cr4Pae;
            sregs.Efer = EferLme | EferLma;
        }
        else
        {
            sregs.Cr0 = Cr0Pe | Cr0Et;
            sregs.Cr3 = 0;
            sregs.Cr4 = 0;
            sregs.Efer = 0;
        }
    }
}
