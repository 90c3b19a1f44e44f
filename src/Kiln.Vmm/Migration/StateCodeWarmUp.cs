using Kiln.Contracts.Spec;
using Kiln.Devices.Legacy;
using Kiln.Kvm;

namespace Kiln.Vmm.Migration;

/// <summary>Runs the state save and restore code once on a throwaway 2 MiB machine of the same shape (without disks
/// and NICs, whose backends cannot be opened twice), before a migration's switch-over. The first run of that code
/// pays for JIT compilation, tens of milliseconds on a loaded host, and would otherwise land in the guest's
/// downtime. A failure here only costs speed, so it is logged and ignored.</summary>
internal static class StateCodeWarmUp
{
    private sealed class NoOutput : ISerialOutput
    {
        public void Write(byte b)
        {
        }
    }

    public static void Run(VmSpec spec, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid)
    {
        try
        {
            var shape = spec with { Machine = spec.Machine with { MemoryBytes = 2 << 20 }, Disks = [], Nics = [] };
            using var machine = Machine.CreateForRestore(shape, kvm, supportedCpuid, new NoOutput());
            machine.RestoreState(machine.SaveState());
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            KilnLog.Debug($"migration warm-up skipped: {e.Message}");
        }
    }
}
