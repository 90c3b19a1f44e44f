using System.Numerics;
using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>POPCNT, LZCNT and TZCNT (r16/32/64, r/m), which KVM's emulator lacks and kernels use in hot paths
/// (bitmaps, the scheduler). Flags per the SDM: POPCNT clears OF/SF/AF/CF/PF and sets ZF for a zero source;
/// LZCNT/TZCNT set CF for a zero source and ZF for a zero result, leaving the others.</summary>
internal static class BitCount
{
    private const ulong Cf = 1 << 0, Pf = 1 << 2, Af = 1 << 4, Zf = 1 << 6, Sf = 1 << 7, Of = 1 << 11;

    public static bool Handles(Code code) => code is
        Code.Popcnt_r16_rm16 or Code.Popcnt_r32_rm32 or Code.Popcnt_r64_rm64 or
        Code.Lzcnt_r16_rm16 or Code.Lzcnt_r32_rm32 or Code.Lzcnt_r64_rm64 or
        Code.Tzcnt_r16_rm16 or Code.Tzcnt_r32_rm32 or Code.Tzcnt_r64_rm64;

    public static void Execute(EmulationContext context)
    {
        var instruction = context.Instruction;
        int bits = instruction.Op0Register.GetSize() * 8;
        ulong source = instruction.Op1Kind == OpKind.Register
            ? GeneralRegisters.Get(context.Regs, instruction.Op1Register)
            : ReadMemory(context, bits / 8);
        ulong result;
        ulong flags = context.Regs.Rflags;
        switch (instruction.Mnemonic)
        {
            case Mnemonic.Popcnt:
                result = (ulong)BitOperations.PopCount(source);
                flags &= ~(Of | Sf | Zf | Af | Cf | Pf);
                if (source == 0)
                    flags |= Zf;
                break;
            case Mnemonic.Lzcnt:
                result = source == 0 ? (ulong)bits : (ulong)(BitOperations.LeadingZeroCount(source) - (64 - bits));
                flags = ZeroCarry(flags, source, result);
                break;
            default: // TZCNT
                result = source == 0 ? (ulong)bits : (ulong)BitOperations.TrailingZeroCount(source);
                flags = ZeroCarry(flags, source, result);
                break;
        }
        GeneralRegisters.Set(ref context.Regs, instruction.Op0Register, result);
        context.Regs.Rflags = flags;
        context.AdvanceRip();
    }

    private static ulong ZeroCarry(ulong flags, ulong source, ulong result)
    {
        flags &= ~(Cf | Zf);
        if (source == 0)
            flags |= Cf;
        if (result == 0)
            flags |= Zf;
        return flags;
    }

    private static ulong ReadMemory(EmulationContext context, int size)
    {
        var bytes = context.Memory.Read(OperandAddressing.LinearAddress(context), size);
        return size switch
        {
            2 => BitConverter.ToUInt16(bytes),
            4 => BitConverter.ToUInt32(bytes),
            _ => BitConverter.ToUInt64(bytes),
        };
    }
}
