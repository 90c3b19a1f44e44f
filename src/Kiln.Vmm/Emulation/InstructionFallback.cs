using System.Collections.Concurrent;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Emulation;

/// <summary>Completes instructions that KVM's in-kernel emulator gives up on (KVM_EXIT_INTERNAL_ERROR, suberror 1),
/// so a guest whose ring 0 is emulated (PVM hosts) keeps running. Called on the failing vCPU's thread.</summary>
public sealed class InstructionFallback(GuestMemory memory)
{
    private readonly ConcurrentDictionary<string, long> _counts = new();

    /// <summary>How often each instruction was completed here, for --stats.</summary>
    public IReadOnlyDictionary<string, long> Counts => _counts;

    /// <summary>Emulates the instruction at the vCPU's RIP and advances it. Returns false, with a reason, for an
    /// instruction it does not know; the vCPU's state is then unchanged.</summary>
    public bool TryEmulate(Vcpu vcpu, out string? failure)
    {
        _ = memory;
        failure = "no fallback emulation yet";
        return false;
    }

    internal void Count(string mnemonic) => _counts.AddOrUpdate(mnemonic, 1, (_, n) => n + 1);
}
