using Kiln.Devices.Bus;
using Kiln.Interop;
using Kiln.Kvm;
using Kiln.Memory;
using Kiln.Vmm.Cpu;

namespace Kiln.Vmm;

/// <summary>One vCPU's thread: KVM_RUN, then one switch over the exit reason. Nothing here blocks except KVM_RUN,
/// and device I/O goes straight to the bus.</summary>
internal sealed class VcpuRunner
{
    private readonly Vcpu _vcpu;
    private readonly Machine _machine;
    private readonly IoBus _pio;
    private readonly IoBus _mmio;
    private readonly GuestMemory _memory;
    private Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private int _threadId;
    private volatile bool _pauseRequested;

    public VcpuRunner(Vcpu vcpu, Machine machine, IoBus pio, IoBus mmio, GuestMemory memory)
    {
        _vcpu = vcpu;
        _machine = machine;
        _pio = pio;
        _mmio = mmio;
        _memory = memory;
        _thread = NewThread();
    }

    public Vcpu Vcpu => _vcpu;

    private Thread NewThread() => new(Loop) { Name = $"vcpu{_vcpu.Id}", IsBackground = true };

    public ExitCounters Exits { get; } = new();

    /// <summary>KVM_INTERNAL_ERROR_EMULATION: KVM's instruction emulator gave up.</summary>
    private const uint EmulationFailure = 1;

    public void Start()
    {
        if (_thread.ThreadState != ThreadState.Unstarted)
            _thread = NewThread();
        _started.Reset();
        _pauseRequested = false;
        _vcpu.RequestImmediateExit(false);
        _thread.Start();
        _started.Wait();
    }

    /// <summary>Makes KVM_RUN return (immediate_exit covers a kick that lands before the thread enters the guest)
    /// and waits for the thread to leave. The vCPU's state is then complete in KVM and can be saved; Start resumes.</summary>
    public void Stop()
    {
        _pauseRequested = true;
        _vcpu.RequestImmediateExit();
        // Kick at once: waiting first would add up to 10 ms to every pause (a migration's downtime).
        if (_thread.IsAlive)
            Threads.Kick(_threadId);
        while (!_thread.Join(10))
            Threads.Kick(_threadId);
    }

    private void Loop()
    {
        _threadId = Threads.CurrentThreadId();
        _started.Set();
        try
        {
            VcpuPinning.ApplyToCurrentThread(_vcpu.Id, _machine.Spec.Machine.Cpus);
            while (!_machine.IsStopping && !_pauseRequested)
            {
                if (!_vcpu.Run())
                    continue; // kicked; the loop condition decides
                var exit = HandleExit();
                if (exit is not null)
                    _machine.RequestStop(exit);
            }
        }
        catch (Exception e) when (e is KvmException or GuestMemoryException or SystemCallException)
        {
            _machine.RequestStop(MachineExit.Error($"vCPU {_vcpu.Id}: {e.Message}"));
        }
        catch (Exception e)
        {
            // The buses contain device faults, so this is a VMM bug; still an orderly stop (disks flushed, one
            // clear line), never an unhandled exception that aborts the process.
            KilnLog.Debug(e.ToString());
            _machine.RequestStop(MachineExit.Error($"vCPU {_vcpu.Id}: internal error: {e.GetType().Name}: {e.Message}"));
        }
    }

    /// <summary>Handles one exit; returns why the machine must stop, or null to re-enter the guest.</summary>
    private MachineExit? HandleExit()
    {
        var run = _vcpu.RunState;
        var reason = run.ExitReason;
        Exits.Count(reason);
        switch (reason)
        {
            case KvmExitReason.Io:
            {
                var data = run.IoData;
                int size = run.IoSize;
                ushort port = run.IoPort;
                bool isOut = run.IoIsOut;
                // String I/O (rep ins/outs) arrives as count back-to-back elements of one size.
                for (int offset = 0; offset < data.Length; offset += size)
                {
                    var element = data.Slice(offset, size);
                    if (isOut)
                        _pio.Write(port, element);
                    else
                        _pio.Read(port, element);
                }
                return null;
            }
            case KvmExitReason.Mmio:
            {
                ulong address = run.MmioAddress;
                if (run.MmioIsWrite)
                    _mmio.Write(address, run.MmioData);
                else
                    _mmio.Read(address, run.MmioData);
                return null;
            }
            case KvmExitReason.Intr:
            case KvmExitReason.IrqWindowOpen:
                return null;
            case KvmExitReason.Hlt:
                // Only without an in-kernel irqchip; Kiln always has one, so a halt here means the guest stopped.
                return MachineExit.PowerOff($"vCPU {_vcpu.Id} halted");
            case KvmExitReason.Shutdown:
                return MachineExit.TripleFault($"vCPU {_vcpu.Id} triple-faulted (the CPU shut down)\n{VcpuDiagnostics.Describe(_vcpu, _memory)}");
            case KvmExitReason.SystemEvent:
                return run.SystemEventType switch
                {
                    KvmSystemEvent.Shutdown => MachineExit.PowerOff("guest powered off"),
                    KvmSystemEvent.Reset => MachineExit.Reset("guest reset"),
                    var t => MachineExit.Error($"vCPU {_vcpu.Id}: guest system event {t}"),
                };
            case KvmExitReason.FailEntry:
                return MachineExit.Error(
                    $"KVM could not enter the guest on vCPU {_vcpu.Id} (hardware entry failure reason 0x{run.FailEntryReason:x})\n"
                    + VcpuDiagnostics.Describe(_vcpu, _memory));
            case KvmExitReason.InternalError:
            {
                uint sub = run.InternalSuberror;
                string? fallbackFailure = null;
                if (sub == EmulationFailure && _machine.Fallback.TryEmulate(_vcpu, out fallbackFailure))
                    return null;
                string what = sub switch
                {
                    1 => "KVM could not emulate an instruction",
                    2 => "KVM hit a simultaneous exception",
                    3 => "KVM failed to deliver an event",
                    _ => $"KVM internal error {sub}",
                };
                string data = string.Join(' ', run.InternalData.ToArray().Select(d => d.ToString("x")));
                string fallback = fallbackFailure is null ? "" : $"; Kiln's fallback: {fallbackFailure}";
                return MachineExit.Error($"{what} on vCPU {_vcpu.Id} (suberror {sub}, data [{data}]{fallback})\n{VcpuDiagnostics.Describe(_vcpu, _memory)}");
            }
            default:
                return MachineExit.Error($"vCPU {_vcpu.Id}: unexpected KVM exit {reason} ({(uint)reason})\n{VcpuDiagnostics.Describe(_vcpu, _memory)}");
        }
    }
}
