using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>CMPXCHG16B m128: compares RDX:RAX with the operand; equal -> ZF=1 and RCX:RBX is stored, else ZF=0 and
/// the operand is loaded into RDX:RAX (the CPU writes the old value back, so the page must be writable either way).
/// Misaligned operand -> #GP(0). Only ZF changes among the flags.
///
/// Atomicity: .NET has no 128-bit compare-and-swap, and the other vCPUs keep running while this one is stopped.
/// Emulated CMPXCHG16Bs on all vCPUs are serialised by <see cref="Gate"/> (read, compare and commit happen under it),
/// so they are atomic with respect to each other, but not against a concurrent store by another vCPU's
/// natively run or KVM-emulated code. On PVM that is ring-0 code, which in practice uses CMPXCHG16B on the same
/// data (e.g. SLUB freelists), so this covers the common pattern.</summary>
internal static class Cmpxchg16b
{
    public static readonly Lock Gate = new();

    public static bool Handles(Code code) => code == Code.Cmpxchg16b_m128;

    public static void Execute(EmulationContext context)
    {
        ulong address = OperandAddressing.LinearAddress(context);
        SseControl.CheckAligned(address, 16);
        var memory = context.Memory;
        var old = memory.Read(address, 16);
        ulong lo = BitConverter.ToUInt64(old, 0), hi = BitConverter.ToUInt64(old, 8);
        ref var r = ref context.Regs;
        const ulong zf = 1UL << 6;
        if (lo == r.Rax && hi == r.Rdx)
        {
            var replacement = new byte[16];
            BitConverter.TryWriteBytes(replacement.AsSpan(0, 8), r.Rbx);
            BitConverter.TryWriteBytes(replacement.AsSpan(8, 8), r.Rcx);
            memory.Write(address, replacement);
            r.Rflags |= zf;
        }
        else
        {
            memory.Write(address, old);
            r.Rax = lo;
            r.Rdx = hi;
            r.Rflags &= ~zf;
        }
        context.AdvanceRip();
    }
}
