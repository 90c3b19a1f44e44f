using System.Diagnostics;
using Kiln.Contracts.Control;
using Kiln.Devices.Legacy;

namespace Kiln.Vmm.Control;

/// <summary>The control socket's commands, one handler each in a table: status, pause, resume, shutdown
/// (Ctrl-Alt-Del), power-button (ACPI), reset, stop, stats, console and watch (which change the connection's mode
/// after their answer), save, snapshot, migrate and migrate-abort. Holds what the commands share: whether a client
/// paused the machine, whether it was saved, and the running migration.</summary>
internal sealed class ControlCommands
{
    /// <summary>A migration pauses and resumes the machine itself (throttling, the stop-and-copy); a client's pause,
    /// resume or snapshot meanwhile could let the vCPUs run after the last dirty pages were collected.</summary>
    private const string MigrationBusy = "a migration is running (migrate-abort first)";

    private readonly VmmRunner _runner;
    private readonly string? _name;
    private readonly ConsoleHub _console;
    private readonly WatchHub _watch;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly MigrationControl _migration = new();
    private readonly object _lock = new();
    private readonly Dictionary<string, Func<ControlRequest, Machine?, ControlResponse>> _table;
    private bool _paused;
    private bool _saved;

    public ControlCommands(VmmRunner runner, string? name, ConsoleHub console, WatchHub watch)
    {
        _runner = runner;
        _name = name;
        _console = console;
        _watch = watch;
        _table = new Dictionary<string, Func<ControlRequest, Machine?, ControlResponse>>(StringComparer.Ordinal)
        {
            ["status"] = (_, machine) => Status(machine),
            ["pause"] = (_, machine) => Pause(machine),
            ["resume"] = (_, machine) => Resume(machine),
            ["shutdown"] = (_, machine) => CtrlAltDel(machine),
            ["power-button"] = (_, machine) => PowerButton(machine),
            ["reset"] = (_, machine) => Reset(machine),
            ["stop"] = (_, _) => Stop(),
            ["stats"] = (_, machine) => Stats(machine),
            ["console"] = (_, _) => Ok(),
            ["watch"] = (_, _) => Ok(),
            ["save"] = SaveSnapshot,
            ["snapshot"] = SaveSnapshot,
            ["migrate"] = Migrate,
            ["migrate-abort"] = (_, _) => _migration.Abort(),
        };
    }

    /// <summary>A request's handler reads device and vCPU state a guest shaped (saving a snapshot, statistics,
    /// pressing the power button); whatever it throws becomes this client's error reply and a log line, never an
    /// unhandled exception on the control thread.</summary>
    public ControlResponse Handle(ControlRequest request)
    {
        if (!_table.TryGetValue(request.Command, out var handler))
            return Fail($"unknown command '{request.Command}' ({string.Join(", ", _table.Keys)})");
        try
        {
            return handler(request, _runner.CurrentMachine);
        }
        catch (Exception e)
        {
            KilnLog.Warn($"control: {request.Command} failed: {e.GetType().Name}: {e.Message}");
            KilnLog.Debug(e.ToString());
            return Fail($"{request.Command} failed: {e.Message}");
        }
    }

    private ControlResponse Status(Machine? machine) => new()
    {
        Ok = true, Name = _name, Pid = Environment.ProcessId, State = StateName(machine),
        UptimeSeconds = _uptime.Elapsed.TotalSeconds, Boots = _runner.Boots,
    };

    private ControlResponse Pause(Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        if (_migration.IsRunning)
            return Fail(MigrationBusy);
        lock (_lock)
        {
            if (!_paused)
                machine.Pause();
            _paused = true;
        }
        _watch.Broadcast(new ControlEvent { Event = "paused" });
        return Ok();
    }

    private ControlResponse Resume(Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        if (_migration.IsRunning)
            return Fail(MigrationBusy);
        lock (_lock)
        {
            if (_saved)
                return Fail("the machine was saved and is stopping");
            if (_paused)
                machine.Resume();
            _paused = false;
        }
        _watch.Broadcast(new ControlEvent { Event = "resumed" });
        return Ok();
    }

    private static ControlResponse CtrlAltDel(Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        var i8042 = machine.Devices.OfType<I8042>().FirstOrDefault();
        return i8042 is not null && i8042.InjectCtrlAltDel()
            ? Ok() : Fail("the guest's keyboard controller is not accepting keys (no Ctrl-Alt-Del possible)");
    }

    private static ControlResponse PowerButton(Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        var pm = machine.Devices.OfType<AcpiPmDevice>().FirstOrDefault();
        if (pm is null || !pm.PowerButtonEnabled)
            return Fail("the guest has not enabled the ACPI power button (no ACPI OS listening)");
        pm.PressPowerButton();
        return Ok();
    }

    private ControlResponse Reset(Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        lock (_lock)
        {
            if (_saved)
                return Fail("the machine was saved and is stopping");
            _paused = false;
        }
        machine.RequestStop(MachineExit.Reset("reboot requested through the control socket"));
        _watch.Broadcast(new ControlEvent { Event = "reboot" });
        return Ok();
    }

    private ControlResponse Stop()
    {
        _runner.RequestStop(MachineExit.UserStop("stopped through the control socket"));
        return Ok();
    }

    private ControlResponse Stats(Machine? machine)
    {
        var response = new ControlResponse
        {
            Ok = true, Name = _name, Pid = Environment.ProcessId, State = StateName(machine),
            UptimeSeconds = _uptime.Elapsed.TotalSeconds, Boots = _runner.Boots, Vcpus = machine?.Spec.Machine.Cpus,
            MemoryBytes = machine?.Spec.Machine.MemoryBytes, ConsoleBytes = _console.Bytes, Exits = [],
        };
        if (machine is not null)
        {
            foreach (var (reason, count) in ExitCounters.Sum(machine.ExitCounters))
                response.Exits[reason.ToString()] = count;
            response.UnhandledPortReads = machine.Pio.UnhandledReads;
            response.UnhandledPortWrites = machine.Pio.UnhandledWrites;
            response.Disks = DeviceStatsCollector.Disks(machine);
            response.Nics = DeviceStatsCollector.Nics(machine);
            response.VcpuTimes = DeviceStatsCollector.VcpuTimes();
        }
        return response;
    }

    /// <summary><c>save</c>: pause, write, stop the VM (virsh save; the stop follows once the client has its answer).
    /// <c>snapshot</c>: pause, write, resume (unless a client had paused it). The lock keeps pause/resume requests out
    /// while the file is written.</summary>
    private ControlResponse SaveSnapshot(ControlRequest request, Machine? machine)
    {
        if (_migration.IsRunning)
            return Fail(MigrationBusy);
        if (machine is null)
            return NotRunning();
        if (string.IsNullOrEmpty(request.File) || !Path.IsPathFullyQualified(request.File))
            return Fail($"{request.Command} needs an absolute snapshot path in \"file\"");
        bool save = request.Command == "save";
        Snapshot.SnapshotWriteResult result;
        var paused = Stopwatch.StartNew();
        lock (_lock)
        {
            if (machine.IsStopping || _saved)
                return Fail("the machine is stopping");
            if (!_paused)
                machine.Pause();
            try
            {
                result = Snapshot.VmSnapshot.Save(machine, request.File, _name);
            }
            catch (Exception e)
            {
                // Whatever failed (the file, or device state a guest shaped), the guest runs on as before.
                if (!_paused)
                    machine.Resume();
                return Fail(e is Contracts.Snapshot.SnapshotException or IOException or UnauthorizedAccessException
                    ? e.Message : $"{request.Command} failed: {e.GetType().Name}: {e.Message}");
            }
            // A saved machine stays paused until the server stops it, after sending this reply.
            if (save)
                _saved = true;
            else if (!_paused)
                machine.Resume();
        }
        return new ControlResponse
        {
            Ok = true, SnapshotBytes = result.FileBytes, SnapshotRamDataBytes = result.RamDataBytes,
            PausedMs = paused.Elapsed.TotalMilliseconds,
        };
    }

    private ControlResponse Migrate(ControlRequest request, Machine? machine)
    {
        if (machine is null)
            return NotRunning();
        if (Volatile.Read(ref _paused))
            return Fail("the machine is paused; resume it before migrating");
        return _migration.Start(_runner, machine, request, e => _watch.Broadcast(e), leftPaused: () =>
        {
            lock (_lock)
                _paused = true;
            _watch.Broadcast(new ControlEvent { Event = "paused" });
        });
    }

    private string StateName(Machine? machine) =>
        machine is null ? "stopping" : Volatile.Read(ref _paused) ? "paused" : "running";

    private static ControlResponse Ok() => new() { Ok = true };

    private static ControlResponse NotRunning() => Fail("the machine is not running");

    private static ControlResponse Fail(string error) => new() { Ok = false, Error = error };
}
