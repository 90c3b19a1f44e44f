using System.Collections.Concurrent;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Emulation;

/// <summary>Completes instructions that KVM's in-kernel emulator gives up on (KVM_EXIT_INTERNAL_ERROR, suberror 1),
/// so a guest whose ring 0 is emulated (PVM hosts) keeps running. Called on the failing vCPU's thread.
/// The semantics live in <see cref="FallbackEmulator"/>; this class binds it to KVM and counts.</summary>
public sealed class InstructionFallback(GuestMemory memory)
{
    private readonly ConcurrentDictionary<string, long> _counts = new();

    /// <summary>How often each instruction was completed here (or turned into a guest exception), for --stats.</summary>
    public IReadOnlyDictionary<string, long> Counts => _counts;

    /// <summary>Emulates the instruction at the vCPU's RIP and advances it. Returns false, with a reason, for an
    /// instruction it does not know; the vCPU's state is then unchanged.</summary>
    public bool TryEmulate(Vcpu vcpu, out string? failure) => TryEmulate(new KvmVcpuState(vcpu, memory), out failure);

    internal bool TryEmulate(IVcpuState state, out string? failure)
    {
        var outcome = FallbackEmulator.Run(state);
        failure = outcome.Failure;
        if (outcome.Handled)
            Count(outcome.Name);
        return outcome.Handled;
    }

    internal void Count(string mnemonic) => _counts.AddOrUpdate(mnemonic, 1, (_, n) => n + 1);
}
