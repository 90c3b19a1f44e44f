using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>What became of one emulation attempt.</summary>
public readonly record struct EmulationOutcome(bool Handled, string Name, string? Failure)
{
    public static EmulationOutcome Fail(string reason) => new(false, "", reason);
}

/// <summary>Decodes the instruction at the vCPU's RIP and runs it against <see cref="IVcpuState"/>. The instruction
/// either completes (state committed, RIP advanced), raises a guest exception (only that is injected), or is
/// reported as not emulated with the vCPU unchanged. No exception escapes.</summary>
public static class FallbackEmulator
{
    private static readonly (Func<Code, bool> Handles, Action<EmulationContext> Execute)[] Handlers =
    [
        (BreakpointDelivery.Handles, BreakpointDelivery.Execute),
        (X87Control.Handles, X87Control.Execute),
        (SseControl.Handles, SseControl.Execute),
        (XsaveInstructions.Handles, XsaveInstructions.Execute),
        (Cmpxchg16b.Handles, Cmpxchg16b.Execute),
        (BitCount.Handles, BitCount.Execute),
        (SmapControl.Handles, SmapControl.Execute),
    ];

    public static EmulationOutcome Run(IVcpuState state)
    {
        bool committing = false;
        string name = "";
        try
        {
            var regs = state.GetRegs();
            var sregs = state.GetSregs();
            int bitness = InstructionFetcher.Bitness(sregs);
            var instruction = InstructionFetcher.Fetch(state, regs, sregs, bitness, out var bytes);
            name = instruction.Mnemonic.ToString().ToUpperInvariant();
            var execute = Handlers.FirstOrDefault(h => h.Handles(instruction.Code)).Execute;
            if (execute is null)
                return EmulationOutcome.Fail($"{name} ({InstructionFetcher.Hex(bytes)}) at 0x{regs.Rip:x} is not emulated");
            var context = new EmulationContext(state, instruction, regs, sregs, bitness);
            try
            {
                if (Cmpxchg16b.Handles(instruction.Code))
                {
                    lock (Cmpxchg16b.Gate)
                    {
                        execute(context);
                        committing = true;
                        context.Commit();
                    }
                }
                else
                {
                    execute(context);
                    committing = true;
                    context.Commit();
                }
                return new EmulationOutcome(true, context.CompletedAs ?? name, null);
            }
            catch (GuestFaultException fault)
            {
                committing = true;
                state.InjectException(fault.Exception);
                return new EmulationOutcome(true, $"{name} -> {fault.Exception}", null);
            }
        }
        catch (NotEmulatedException e)
        {
            return EmulationOutcome.Fail(Describe(name, e.Message, committing));
        }
        catch (Exception e)
        {
            return EmulationOutcome.Fail(Describe(name, $"{e.GetType().Name}: {e.Message}", committing));
        }
    }

    private static string Describe(string name, string reason, bool committing) =>
        (name.Length > 0 ? $"{name}: " : "") + reason + (committing ? " (while updating the vCPU: its state may be partly changed)" : "");
}
