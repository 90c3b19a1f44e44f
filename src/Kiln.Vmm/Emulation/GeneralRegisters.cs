using Iced.Intel;
using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>Reads and writes the general-purpose register an Iced operand names, with the CPU's width rules: a
/// 32-bit write zero-extends to 64 bits, 16- and 8-bit writes keep the other bits.</summary>
internal static class GeneralRegisters
{
    public static ulong Get(in KvmRegs r, Register register) =>
        register.GetSize() switch
        {
            8 => Full(r, register.GetFullRegister()),
            4 => (uint)Full(r, register.GetFullRegister()),
            2 => (ushort)Full(r, register.GetFullRegister()),
            _ => throw new NotEmulatedException($"register {register} is not a 16/32/64-bit general register"),
        };

    public static void Set(ref KvmRegs r, Register register, ulong value)
    {
        var full = register.GetFullRegister();
        ulong merged = register.GetSize() switch
        {
            8 => value,
            4 => (uint)value,
            2 => (Full(r, full) & ~0xFFFFUL) | (ushort)value,
            _ => throw new NotEmulatedException($"register {register} is not a 16/32/64-bit general register"),
        };
        Slot(ref r, full) = merged;
    }

    private static ulong Full(KvmRegs r, Register full) => Slot(ref r, full);

    private static ref ulong Slot(ref KvmRegs r, Register full)
    {
        switch (full)
        {
            case Register.RAX: return ref r.Rax;
            case Register.RBX: return ref r.Rbx;
            case Register.RCX: return ref r.Rcx;
            case Register.RDX: return ref r.Rdx;
            case Register.RSI: return ref r.Rsi;
            case Register.RDI: return ref r.Rdi;
            case Register.RSP: return ref r.Rsp;
            case Register.RBP: return ref r.Rbp;
            case Register.R8: return ref r.R8;
            case Register.R9: return ref r.R9;
            case Register.R10: return ref r.R10;
            case Register.R11: return ref r.R11;
            case Register.R12: return ref r.R12;
            case Register.R13: return ref r.R13;
            case Register.R14: return ref r.R14;
            case Register.R15: return ref r.R15;
            default: throw new NotEmulatedException($"register {full} is not a general register");
        }
    }
}
