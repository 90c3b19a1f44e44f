using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>CLAC and STAC (0f 01 ca / 0f 01 cb): clear or set RFLAGS.AC, which with CR4.SMAP lets supervisor code
/// reach user pages. KVM's emulator lacks both, and a kernel that finds SMAP runs them at every exception entry and
/// around every user copy (Debian's stock kernel). Both are #UD outside ring 0 and with a LOCK prefix. Whether the
/// CPU has SMAP is not checked: the guest ran the instruction because its CPUID said so.
/// A CLAC at the guest's page-fault entry may be a system call that faulted (<see cref="SyscallFromPageFault"/>).</summary>
internal static class SmapControl
{
    private const ulong Ac = 1UL << 18;

    public static bool Handles(Code code) => code is Code.Clac or Code.Stac;

    public static void Execute(EmulationContext context)
    {
        if (context.Cpl != 0 || context.Instruction.HasLockPrefix)
            throw EmulationContext.Fault(GuestException.InvalidOpcode);
        if (context.Instruction.Code == Code.Clac && SyscallFromPageFault.TryComplete(context))
            return;
        context.Regs.Rflags = context.Instruction.Code == Code.Clac ? context.Regs.Rflags & ~Ac : context.Regs.Rflags | Ac;
        context.AdvanceRip();
    }
}
