using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>INT3 (cc): #BP is a trap, so RIP first moves past the instruction and the exception is then injected
/// through KVM_SET_VCPU_EVENTS (exception.injected=1, nr=3, no error code); KVM delivers it through the guest's IDT
/// on the next entry and the handler sees the RIP after the int3, as on hardware.</summary>
internal static class BreakpointDelivery
{
    public static bool Handles(Code code) => code == Code.Int3;

    public static void Execute(EmulationContext context)
    {
        context.AdvanceRip();
        context.Trap = new GuestException(GuestException.Breakpoint);
    }
}
