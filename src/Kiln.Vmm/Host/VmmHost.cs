using System.Diagnostics;
using Kiln.Contracts.Control;
using Kiln.Contracts.Spec;
using Kiln.Vmm.Snapshot;

namespace Kiln.Vmm.Host;

/// <summary>One VMM process from a <see cref="VmmLaunch"/> to its exit status: what `kiln run` does with its flags
/// and a daemon's standby VMM with its launch line. The spec's source picks the first machine (a boot, a snapshot
/// restore, an incoming migration); the control socket, when there is one, replaces the terminal.</summary>
public static class VmmHost
{
    public static int Run(VmmLaunch launch, ILaunchReporter? reporter = null)
    {
        try
        {
            return Start(launch, reporter ?? NoReporter.Instance);
        }
        catch (Exception e)
        {
            reporter?.Failed(e);
            throw;
        }
    }

    private static int Start(VmmLaunch launch, ILaunchReporter reporter)
    {
        // Guest-triggered lines (device faults, refused MSIs, broken drivers), rate-limited at each site.
        Devices.RateLimitedLog.Sink = KilnLog.Warn;
        var spec = VmSpecValidator.Check(launch.Spec);
        if (spec.Source?.Restore is { } restore)
            return Restore(launch, restore, reporter);
        using var incoming = spec.Source?.Incoming is { } source ? IncomingListener.Listen(source, launch.MigrationToken) : null;
        VmmRunner.MachineFactory? first = incoming is null ? null : (kvm, cpuid, console) => incoming.Receive(spec, kvm, cpuid, console);
        var session = new VmmSession(spec, launch, reporter, first, incoming is null ? null : "incoming-complete");
        if (incoming is not null)
            session.StartedEarly = true; // the source arrives later: listening is the start
        return session.Run();
    }

    /// <summary>A restore: the machine comes from the snapshot; of the launch's spec only the name, the console's
    /// destination and no-reboot apply.</summary>
    private static int Restore(VmmLaunch launch, RestoreSource restore, ILaunchReporter reporter)
    {
        var clock = Stopwatch.StartNew();
        using var snapshot = SnapshotFile.Open(restore.File);
        if (restore.Verify)
            snapshot.VerifyRam();
        var saved = snapshot.Spec;
        var spec = saved with
        {
            Name = launch.Spec.Name ?? saved.Name,
            Machine = saved.Machine with { NoReboot = saved.Machine.NoReboot || launch.Spec.Machine.NoReboot },
            Source = null,
        };
        var opened = clock.Elapsed;
        VmmRunner.MachineFactory first = (kvm, cpuid, console) =>
        {
            var built = clock.Elapsed;
            var machine = VmSnapshot.Restore(snapshot, spec, kvm, cpuid, console);
            // What remains until the vCPUs run is the runner starting them: microseconds.
            if (launch.Stats)
                KilnLog.Info($"restore: file opened and checked in {opened.TotalMilliseconds:F2} ms, machine restored in " +
                    $"{(clock.Elapsed - built).TotalMilliseconds:F2} ms ({snapshot.RamBytes >> 20} MiB RAM mapped lazily); " +
                    $"{clock.Elapsed.TotalMilliseconds:F2} ms from open to resume");
            return machine;
        };
        return new VmmSession(spec, launch, reporter, first, null).Run();
    }

    private sealed class NoReporter : ILaunchReporter
    {
        public static readonly NoReporter Instance = new();

        public void Started()
        {
        }

        public void Failed(Exception error)
        {
        }
    }

}
