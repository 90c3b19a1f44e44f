using Kiln.Contracts.Snapshot;
using Kiln.Contracts.Spec;
using System.Diagnostics;
using Kiln.Devices.Legacy;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Snapshot;

/// <summary>Whole-VM snapshots: a paused <see cref="Machine"/> to a file, and a file back to a machine ready to
/// resume with its RAM mapped lazily from the file.</summary>
public static class VmSnapshot
{
    /// <summary>Writes the state of <paramref name="machine"/>, which the caller has paused (and keeps paused until
    /// this returns), to <paramref name="path"/>.</summary>
    public static SnapshotWriteResult Save(Machine machine, string path, string? name = null)
    {
        byte[] state = machine.SaveState();
        var info = new SnapshotInfo { SavedAtUnixNs = SnapshotInfo.NowUnixNs(), Name = name };
        return SnapshotWriter.Write(path, info, machine.Spec with { Name = name ?? machine.Spec.Name, Source = null }, state, machine.Memory);
    }

    /// <summary>Builds a machine from an opened snapshot, with the given config (the snapshot's own, possibly with
    /// user overrides such as the console): RAM mapped from the file, every vCPU and device restored, and the
    /// guest's kvmclock moved on by the wall-clock time since the save. The machine is paused; run it to resume.</summary>
    public static Machine Restore(SnapshotFile snapshot, VmSpec config, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid,
        ISerialOutput console)
    {
        CheckLayout(snapshot, config);
        var memory = snapshot.MapMemory();
        // CreateForRestore owns the memory from here on, also when it fails.
        var machine = Machine.CreateForRestore(config, kvm, supportedCpuid, console, memory);
        try
        {
            machine.RestoreState(snapshot.MachineState);
            long sinceSave = SnapshotInfo.NowUnixNs() - snapshot.Info.SavedAtUnixNs;
            if (sinceSave > 0)
                machine.AdvanceGuestClock((ulong)sinceSave);
            return machine;
        }
        catch (Devices.State.StateFormatException e)
        {
            machine.Dispose();
            throw new SnapshotException($"snapshot {snapshot.Path}: machine state does not fit: {e.Message}", e);
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>The file's RAM sections must be exactly the RAM layout of the config's memory size; anything else
    /// would leave the guest with holes or memory the state does not know.</summary>
    private static void CheckLayout(SnapshotFile snapshot, VmSpec config)
    {
        var expected = X86MemoryLayout.RamRegions(config.Machine.MemoryBytes).OrderBy(r => r.Start.Value).ToArray();
        var actual = snapshot.Ram.OrderBy(r => r.Start).Select(r => (new GuestAddress(r.Start), r.Size)).ToArray();
        if (!expected.SequenceEqual(actual))
            throw new SnapshotException(
                $"snapshot {snapshot.Path}: its RAM layout does not match {config.Machine.MemoryBytes >> 20} MiB of guest memory");
    }

    /// <summary>Times a restore up to running vCPUs, for benchmarks: open, map, build, restore, resume.</summary>
    public static (Machine Machine, TimeSpan Elapsed) RestoreAndResume(string path, Kvm.Kvm kvm, KvmCpuidEntry2[] cpuid,
        ISerialOutput console)
    {
        var clock = Stopwatch.StartNew();
        using var snapshot = SnapshotFile.Open(path);
        var machine = Restore(snapshot, snapshot.Spec, kvm, cpuid, console);
        machine.Resume();
        return (machine, clock.Elapsed);
    }
}
