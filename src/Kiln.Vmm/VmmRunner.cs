using Kiln.Contracts.Spec;
using Kiln.Devices.State;
using Kiln.Kvm;
using Kiln.Vmm.Console;

namespace Kiln.Vmm;

/// <summary>Runs a VM from a spec to its end: builds a machine, runs it, and on a guest reset builds a fresh one
/// (unless --no-reboot). Owns what outlives one boot: the KVM handle, the console.</summary>
public sealed class VmmRunner : IDisposable
{
    private readonly VmSpec _spec;
    private readonly Kvm.Kvm _kvm;
    private readonly KvmCpuidEntry2[] _supportedCpuid;
    private readonly ConsoleOutput _output;
    private readonly ConsoleInput? _input;
    private readonly object _lock = new();
    private Machine? _current;
    private MachineExit? _stopRequest;

    public VmmRunner(VmSpec spec, int outputFd = 1, int? inputFd = 0)
    {
        _spec = spec;
        _kvm = Kvm.Kvm.Open();
        _supportedCpuid = _kvm.GetSupportedCpuid();
        Interop.Threads.InstallKickHandler();
        _output = new ConsoleOutput(outputFd);
        if (inputFd is int fd)
            _input = new ConsoleInput(fd, () => RequestStop(MachineExit.UserStop("stopped with C-a x")), _output.WriteText);
    }

    public int Boots { get; private set; }
    public Machine? CurrentMachine => _current;

    /// <summary>Exit counts of the last machine, for --stats.</summary>
    public IReadOnlyList<(KvmExitReason Reason, long Count)> LastExitCounts { get; private set; } = [];
    public (long Reads, long Writes) LastUnhandledPorts { get; private set; }

    /// <summary>Instructions the last machine's fallback emulator completed, by mnemonic, for --stats.</summary>
    public IReadOnlyList<(string Instruction, long Count)> LastFallbackCounts { get; private set; } = [];

    /// <summary>Builds the first machine instead of a fresh boot: a snapshot restore or an incoming migration
    /// returns a machine whose state is already loaded (<see cref="Machine.CreateForRestore"/>). A reboot after
    /// that boots the configured kernel as usual. Called on the thread that calls <see cref="Run"/>.</summary>
    public delegate Machine MachineFactory(Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid, Devices.Legacy.ISerialOutput console);

    public MachineExit Run(MachineFactory? firstMachine = null)
    {
        _input?.Start();
        byte[]? cmos = null;
        while (true)
        {
            lock (_lock)
                if (_stopRequest is not null)
                    return _stopRequest;
            // Built outside the lock: a restore or an incoming migration may take a while, and a stop request
            // (a signal) must not wait for it.
            var machine = firstMachine is not null
                ? firstMachine(_kvm, _supportedCpuid, _output)
                : Machine.Create(_spec, _kvm, _supportedCpuid, _output);
            firstMachine = null;
            lock (_lock)
            {
                if (_stopRequest is not null)
                {
                    machine.Dispose();
                    return _stopRequest;
                }
                // Battery-backed CMOS RAM (and the guest's clock setting) survive a reset, as on a PC.
                if (cmos is not null)
                    machine.Cmos.RestoreState(new StateReader(cmos));
                _current = machine;
            }
            Boots++;
            if (_input is not null)
                _input.Target = machine.ConsoleInputDevice;
            MachineExit exit;
            try
            {
                exit = machine.Run();
                var cmosWriter = new StateWriter();
                machine.Cmos.SaveState(cmosWriter);
                cmos = cmosWriter.ToArray();
                LastExitCounts = ExitCounters.Sum(machine.ExitCounters).ToList();
                LastUnhandledPorts = (machine.Pio.UnhandledReads, machine.Pio.UnhandledWrites);
                LastFallbackCounts = machine.Fallback.Counts.OrderBy(c => c.Key, StringComparer.Ordinal)
                    .Select(c => (c.Key, c.Value)).ToList();
            }
            finally
            {
                lock (_lock)
                    _current = null;
                if (_input is not null)
                    _input.Target = null;
                machine.Dispose();
            }
            _output.Flush();
            if (exit.Kind != MachineExitKind.Reset || _spec.Machine.NoReboot)
                return exit;
            KilnLog.Debug($"guest reset ({exit.Message}); rebooting");
        }
    }

    /// <summary>Stops the VM for good (a signal, Ctrl-A X): no reboot follows.</summary>
    public void RequestStop(MachineExit exit)
    {
        lock (_lock)
        {
            _stopRequest ??= exit;
            _current?.RequestStop(exit);
        }
    }

    public void Dispose()
    {
        _output.Dispose();
        _kvm.Dispose();
    }
}
