using System.Text;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Cpu;

/// <summary>The register dump and instruction bytes printed when KVM cannot run or emulate the guest.</summary>
public static class VcpuDiagnostics
{
    public static string Describe(Vcpu vcpu, GuestMemory memory)
    {
        var sb = new StringBuilder();
        try
        {
            var r = vcpu.GetRegs();
            var s = vcpu.GetSregs();
            sb.Append($"  vCPU {vcpu.Id}: RIP={r.Rip:x16} RSP={r.Rsp:x16} RFLAGS={r.Rflags:x8}\n");
            sb.Append($"  RAX={r.Rax:x16} RBX={r.Rbx:x16} RCX={r.Rcx:x16} RDX={r.Rdx:x16}\n");
            sb.Append($"  RSI={r.Rsi:x16} RDI={r.Rdi:x16} RBP={r.Rbp:x16} R8 ={r.R8:x16}\n");
            sb.Append($"  CS={s.Cs.Selector:x4} (base {s.Cs.Base:x}, L={s.Cs.L} D={s.Cs.Db} DPL={s.Cs.Dpl}) SS={s.Ss.Selector:x4}\n");
            sb.Append($"  CR0={s.Cr0:x} CR2={s.Cr2:x} CR3={s.Cr3:x} CR4={s.Cr4:x} EFER={s.Efer:x}\n");
            sb.Append($"  code at RIP: {InstructionBytes(vcpu, memory, s.Cs.Base + r.Rip)}");
        }
        catch (Exception e) when (e is KvmException or GuestMemoryException)
        {
            sb.Append($"  (registers unavailable: {e.Message})");
        }
        return sb.ToString();
    }

    /// <summary>Up to 16 bytes at a guest-virtual address, translated through the vCPU's page tables.</summary>
    public static string InstructionBytes(Vcpu vcpu, GuestMemory memory, ulong linear)
    {
        var t = vcpu.Translate(linear);
        if (t.Valid == 0)
            return $"(linear {linear:x} is not mapped)";
        var bytes = new List<string>();
        for (ulong i = 0; i < 16; i++)
        {
            var address = new GuestAddress(t.PhysicalAddress + i);
            // Stop at a page boundary: the next page may map elsewhere.
            if (i > 0 && (address.Value & 0xFFF) == 0)
                break;
            if (!memory.IsValid(address, 1))
                break;
            bytes.Add(memory.Read<byte>(address).ToString("x2"));
        }
        return bytes.Count == 0 ? $"(physical {t.PhysicalAddress:x} is not RAM)" : string.Join(' ', bytes);
    }
}
