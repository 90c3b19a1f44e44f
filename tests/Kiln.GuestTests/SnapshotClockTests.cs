using Kiln.Contracts.Spec;
using Kiln.Devices.Legacy;
using Kiln.GuestTests.Support;
using Kiln.Vmm;
using Kiln.Vmm.Snapshot;

namespace Kiln.GuestTests;

/// <summary>The guest's clocks after a restore: kvmclock moves on by the time the VM spent saved (it neither stalls
/// at the saved value nor runs backwards), and the CMOS RTC keeps following the host's wall clock.</summary>
public sealed class SnapshotClockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-snapclock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class NoOutput : ISerialOutput
    {
        public void Write(byte b)
        {
        }
    }

    [KvmFact]
    public void KvmclockCatchesUpWithTheTimeSpentSaved()
    {
        using var kvm = global::Kiln.Kvm.Kvm.Open();
        var cpuid = kvm.GetSupportedCpuid();
        Interop.Threads.InstallKickHandler();
        var config = new VmSpec { Boot = new BootSpec { Kernel = TestGuest.Path, CommandLine = "test=counter delay_us=10000" }, Machine = new MachineSpec { MemoryBytes = 32UL << 20 } };
        string file = Path.Combine(_dir, "clock.ksnap");
        ulong savedClock;
        DateTime savedRtc;
        using (var a = Machine.Create(config, kvm, cpuid, new NoOutput()))
        {
            a.Resume();
            Thread.Sleep(200);
            a.Pause();
            savedClock = a.GuestClockNanoseconds;
            savedRtc = a.Cmos.GuestTime;
            VmSnapshot.Save(a, file, "clock");
        }
        var away = TimeSpan.FromMilliseconds(1500);
        Thread.Sleep(away);
        using var snapshot = SnapshotFile.Open(file);
        using var b = VmSnapshot.Restore(snapshot, snapshot.Spec, kvm, cpuid, new NoOutput());
        double advancedMs = (b.GuestClockNanoseconds - savedClock) / 1e6;
        // At least the time away (minus the save's own duration, which is before the file's timestamp); not far more.
        Assert.InRange(advancedMs, away.TotalMilliseconds - 100, away.TotalMilliseconds + 5000);
        double rtcMs = (b.Cmos.GuestTime - savedRtc).TotalMilliseconds;
        Assert.InRange(rtcMs, away.TotalMilliseconds - 1000, away.TotalMilliseconds + 6000); // RTC resolution: 1 s
    }
}
