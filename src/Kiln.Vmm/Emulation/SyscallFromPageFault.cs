using System.Buffers.Binary;
using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>Completes a SYSCALL that the host turned into a page fault. On PVM hosts (guest ring 0 emulated),
/// SYSCALL from guest user mode jumps to MSR_LSTAR with RCX and R11 set but stays at CPL 3, so fetching the
/// (supervisor-only) kernel entry faults and the guest kernel sees a user page fault at RIP = CR2 = LSTAR. A kernel
/// that is not PVM-aware (Debian's stock kernel) would kill the process. The VMM sees the fault where the guest's
/// page-fault entry runs CLAC, its first instruction when the kernel uses SMAP; there it drops the exception frame
/// and puts the vCPU where SYSCALL would have: CPL 0 with the kernel CS/SS from MSR_STAR, RFLAGS masked by
/// MSR_FMASK, the user RSP, at LSTAR. The kit kernel does the same inside its #PF handler (guestkit patch 0003);
/// on hardware-virtualization hosts SYSCALL works and this never matches.</summary>
internal static class SyscallFromPageFault
{
    public const string Name = "SYSCALL (#PF at LSTAR)";

    private const uint MsrStar = 0xC000_0081, MsrLstar = 0xC000_0082, MsrFmask = 0xC000_0084;
    private const ulong EferSce = 1;
    private const int PageFaultVector = 14;
    private const int GateSize = 16;
    private const int EndbrLength = 4; // an IBT kernel's entry starts with ENDBR64, then CLAC
    private const ulong ErrorUser = 1 << 2;
    private const ulong RflagsRf = 1 << 16, RflagsFixed = 1 << 1;

    /// <summary>The frame the CPU pushed for a #PF (it has an error code), lowest address first.</summary>
    private readonly record struct FaultFrame(ulong Error, ulong Rip, ulong Cs, ulong Rflags, ulong Rsp, ulong Ss);

    /// <summary>True when the CLAC being emulated is the entry of a page fault that was a SYSCALL; the context then
    /// holds the post-SYSCALL state. False (nothing changed) for every other CLAC.</summary>
    public static bool TryComplete(EmulationContext context)
    {
        if (!context.LongMode64 || (context.Sregs.Efer & EferSce) == 0)
            return false;
        try
        {
            if (PageFaultEntry(context) is not ulong entry || context.Regs.Rip - entry > EndbrLength)
                return false;
            var frame = ReadFrame(context);
            if ((frame.Cs & 3) != 3 || (frame.Error & ErrorUser) == 0 || frame.Rip != context.Sregs.Cr2)
                return false;
            ulong lstar = context.State.GetMsr(MsrLstar);
            if (frame.Rip != lstar)
                return false;
            Enter(context, frame, lstar, context.State.GetMsr(MsrStar), context.State.GetMsr(MsrFmask));
            return true;
        }
        catch (GuestFaultException)
        {
            return false; // the IDT or the stack is not mapped: not a fault frame we can read, so an ordinary CLAC
        }
    }

    private static void Enter(EmulationContext context, FaultFrame frame, ulong lstar, ulong star, ulong fmask)
    {
        ushort kernelCs = (ushort)((star >> 32) & 0xFFFC);
        var sregs = context.Sregs;
        sregs.Cs = new KvmSegment
        {
            Selector = kernelCs, Base = 0, Limit = 0xFFFF_FFFF, Type = 0xB, Present = 1, Dpl = 0, S = 1, L = 1, Db = 0, G = 1,
        };
        sregs.Ss = new KvmSegment
        {
            Selector = (ushort)(kernelCs + 8), Base = 0, Limit = 0xFFFF_FFFF, Type = 0x3, Present = 1, Dpl = 0, S = 1, Db = 1, G = 1,
        };
        context.ReplaceSregs(sregs);
        // RCX (return address) and R11 (user RFLAGS) are as the host's SYSCALL left them.
        context.Regs.Rip = lstar;
        context.Regs.Rsp = frame.Rsp;
        context.Regs.Rflags = (frame.Rflags & ~fmask & ~RflagsRf) | RflagsFixed;
        context.CompletedAs = Name;
        if (KilnLog.DebugEnabled)
            KilnLog.Debug($"SYSCALL from #PF: nr {context.Regs.Rax}, return 0x{context.Regs.Rcx:x}, r11 0x{context.Regs.R11:x}, " +
                $"frame rflags 0x{frame.Rflags:x}, user rsp 0x{frame.Rsp:x}");
    }

    /// <summary>The 64-bit offset of IDT gate 14, or null when the IDT is too short for it.</summary>
    private static ulong? PageFaultEntry(EmulationContext context)
    {
        var idt = context.Sregs.Idt;
        if (idt.Limit < PageFaultVector * GateSize + GateSize - 1)
            return null;
        var gate = context.Memory.Read(idt.Base + PageFaultVector * GateSize, GateSize);
        return BinaryPrimitives.ReadUInt16LittleEndian(gate)
            | (ulong)BinaryPrimitives.ReadUInt16LittleEndian(gate.AsSpan(6)) << 16
            | (ulong)BinaryPrimitives.ReadUInt32LittleEndian(gate.AsSpan(8)) << 32;
    }

    private static FaultFrame ReadFrame(EmulationContext context)
    {
        var raw = context.Memory.Read(context.Regs.Rsp, 48);
        ulong At(int i) => BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 8));
        return new FaultFrame(At(0), At(1), At(2), At(3), At(4), At(5));
    }
}
