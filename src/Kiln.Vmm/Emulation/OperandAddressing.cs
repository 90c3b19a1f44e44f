using Iced.Intel;
using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>Effective and linear address of an instruction's memory operand: base + index*scale + displacement
/// (RIP-relative already resolved by the decoder, which is given the real RIP), truncated to the address size,
/// plus the segment base. In 64-bit mode only FS and GS have a base. Segment limits are not checked.</summary>
internal static class OperandAddressing
{
    public static ulong LinearAddress(EmulationContext context)
    {
        var instruction = context.Instruction;
        if (!HasMemoryOperand(instruction))
            throw new NotEmulatedException($"{instruction.Mnemonic} has no memory operand");
        ulong ea = instruction.MemoryDisplacement64;
        int addressBits = context.Bitness;
        if (instruction.MemoryBase == Register.RIP || instruction.MemoryBase == Register.EIP)
        {
            addressBits = instruction.MemoryBase == Register.EIP ? 32 : 64;
        }
        else
        {
            if (instruction.MemoryBase != Register.None)
            {
                ea += RegisterValue(context.Regs, instruction.MemoryBase);
                addressBits = instruction.MemoryBase.GetSize() * 8;
            }
            if (instruction.MemoryIndex != Register.None)
            {
                ea += RegisterValue(context.Regs, instruction.MemoryIndex) * (ulong)instruction.MemoryIndexScale;
                addressBits = instruction.MemoryIndex.GetSize() * 8;
            }
        }
        ea = Truncate(ea, addressBits);
        ulong linear = ea + SegmentBase(context, instruction.MemorySegment);
        return context.LongMode64 ? linear : linear & 0xFFFF_FFFF;
    }

    public static bool HasMemoryOperand(in Instruction instruction)
    {
        for (int i = 0; i < instruction.OpCount; i++)
            if (instruction.GetOpKind(i) == OpKind.Memory)
                return true;
        return false;
    }

    private static ulong Truncate(ulong value, int bits) => bits switch
    {
        16 => value & 0xFFFF,
        32 => value & 0xFFFF_FFFF,
        _ => value,
    };

    private static ulong SegmentBase(EmulationContext context, Register segment)
    {
        var s = context.Sregs;
        if (context.LongMode64)
            return segment switch { Register.FS => s.Fs.Base, Register.GS => s.Gs.Base, _ => 0 };
        return segment switch
        {
            Register.ES => s.Es.Base,
            Register.CS => s.Cs.Base,
            Register.SS => s.Ss.Base,
            Register.DS => s.Ds.Base,
            Register.FS => s.Fs.Base,
            Register.GS => s.Gs.Base,
            _ => 0,
        };
    }

    /// <summary>A general-purpose register's value, zero-extended from its size (AH..BH are bits 8-15).</summary>
    public static ulong RegisterValue(in KvmRegs regs, Register register)
    {
        if (!register.IsGPR())
            throw new NotEmulatedException($"address register {register} is not a general-purpose register");
        ulong full = register.GetFullRegister() switch
        {
            Register.RAX => regs.Rax, Register.RCX => regs.Rcx, Register.RDX => regs.Rdx, Register.RBX => regs.Rbx,
            Register.RSP => regs.Rsp, Register.RBP => regs.Rbp, Register.RSI => regs.Rsi, Register.RDI => regs.Rdi,
            Register.R8 => regs.R8, Register.R9 => regs.R9, Register.R10 => regs.R10, Register.R11 => regs.R11,
            Register.R12 => regs.R12, Register.R13 => regs.R13, Register.R14 => regs.R14, Register.R15 => regs.R15,
            var r => throw new NotEmulatedException($"unexpected register {r}"),
        };
        if (register is Register.AH or Register.CH or Register.DH or Register.BH)
            return (full >> 8) & 0xFF;
        return Truncate(full, register.GetSize() * 8) & (register.GetSize() == 1 ? 0xFFUL : ulong.MaxValue);
    }
}
