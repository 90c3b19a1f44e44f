using System.Diagnostics;
using System.IO.Pipes;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Kiln.Devices.Legacy;

namespace Kiln.Vmm.Control;

/// <summary>The VMM end of the per-VM control socket (see <see cref="ControlRequest"/> for the protocol). It owns the
/// console pipes the runner writes to and reads from, and fans guest output out to the attached console clients, a
/// 64 KiB history ring and (optionally) stdout, which the daemon points at the domain's log file.</summary>
public sealed class ControlServer : IDisposable
{
    private const int HistoryBytes = 64 << 10;
    private readonly string _path;
    private readonly string? _name;
    private readonly bool _echoToStdout;
    private readonly Socket _listener;
    private readonly AnonymousPipeServerStream _fromGuest = new(PipeDirection.In);
    private readonly AnonymousPipeServerStream _toGuest = new(PipeDirection.Out);
    private readonly object _lock = new();
    private readonly List<Socket> _consoles = [];
    private readonly List<Socket> _watchers = [];
    private readonly byte[] _history = new byte[HistoryBytes];
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private long _historyLength;
    private long _consoleBytes;
    private VmmRunner? _runner;
    private readonly MigrationControl _migration = new();
    private bool _paused;
    private bool _saved;
    private bool _closed;
    private byte[]? _exitLine; // kept for a watcher that subscribes while the exit is being announced

    public ControlServer(string path, string? name, bool echoToStdout)
    {
        _path = path;
        _name = name;
        _echoToStdout = echoToStdout;
        if (File.Exists(path))
            File.Delete(path); // a stale socket of a VMM that died
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(16);
    }

    /// <summary>The descriptor the runner writes guest console output to.</summary>
    public int OutputFd => (int)_fromGuest.ClientSafePipeHandle.DangerousGetHandle();

    /// <summary>The descriptor the runner reads console input from.</summary>
    public int InputFd => (int)_toGuest.ClientSafePipeHandle.DangerousGetHandle();

    public void Start(VmmRunner runner)
    {
        _runner = runner;
        new Thread(PumpOutput) { Name = "control-console", IsBackground = true }.Start();
        new Thread(AcceptLoop) { Name = "control-accept", IsBackground = true }.Start();
    }

    /// <summary>Sends an event to every watcher (e.g. <c>incoming-complete</c> once a migrated-in guest runs).</summary>
    public void Announce(ControlEvent e) => Broadcast(e);

    /// <summary>Tells every watcher why the VMM is exiting, then closes the socket and removes its file.</summary>
    public void NotifyExit(MachineExit exit)
    {
        Thread.Sleep(20); // let the output pump hand the last console bytes to attached clients
        Broadcast(new ControlEvent { Event = "exit", Kind = exit.Kind.ToString(), Code = exit.ExitCode, Message = exit.Message }, isExit: true);
        Dispose();
    }

    private void AcceptLoop()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            new Thread(() => Serve(client)) { Name = "control-client", IsBackground = true }.Start();
        }
    }

    private void Serve(Socket client)
    {
        var stream = new NetworkStream(client, ownsSocket: false);
        var reader = new StreamReader(stream, Encoding.UTF8, false, 4096, leaveOpen: true);
        bool keep = false;
        try
        {
            while (reader.ReadLine() is { } line)
            {
                if (line.Length == 0)
                    continue;
                ControlRequest? request;
                try
                {
                    request = JsonSerializer.Deserialize(line, ControlJsonContext.Default.ControlRequest);
                }
                catch (JsonException e)
                {
                    Send(client, new ControlResponse { Error = $"malformed request: {e.Message}" });
                    continue;
                }
                if (request is null)
                    continue;
                var response = HandleContained(request);
                Send(client, response);
                if (!response.Ok)
                    continue;
                // Only once the client has its answer: stopping ends the process, which could cut the reply off.
                if (request.Command == "save")
                    _runner!.RequestStop(MachineExit.UserStop($"saved to {request.File}"));
                if (request.Command == "console")
                {
                    keep = true;
                    AttachConsole(client, stream, request.History);
                    return;
                }
                if (request.Command == "watch")
                {
                    byte[]? missed;
                    lock (_lock)
                    {
                        missed = _exitLine;
                        keep = missed is null && !_closed;
                        if (keep)
                            _watchers.Add(client);
                    }
                    // The guest ended between this watcher's request and its subscription (a guest that powers
                    // off at once): it still learns why, rather than seeing a bare close it would take for a crash.
                    if (missed is not null)
                        client.Send(missed);
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            if (!keep)
                client.Dispose();
        }
    }

    /// <summary>A request's handler reads device and vCPU state a guest shaped (saving a snapshot, statistics,
    /// pressing the power button); whatever it throws becomes this client's error reply and a log line, never an
    /// unhandled exception on the control thread.</summary>
    private ControlResponse HandleContained(ControlRequest request)
    {
        try
        {
            return Handle(request);
        }
        catch (Exception e)
        {
            KilnLog.Warn($"control: {request.Command} failed: {e.GetType().Name}: {e.Message}");
            KilnLog.Debug(e.ToString());
            return Fail($"{request.Command} failed: {e.Message}");
        }
    }

    private ControlResponse Handle(ControlRequest request)
    {
        var runner = _runner!;
        var machine = runner.CurrentMachine;
        switch (request.Command)
        {
            case "status":
                return new ControlResponse
                {
                    Ok = true, Name = _name, Pid = Environment.ProcessId, State = StateName(machine),
                    UptimeSeconds = _uptime.Elapsed.TotalSeconds, Boots = runner.Boots,
                };
            case "pause":
                if (machine is null)
                    return Fail("the machine is not running");
                if (_migration.IsRunning)
                    return Fail(MigrationBusy);
                lock (_lock)
                {
                    if (!_paused)
                        machine.Pause();
                    _paused = true;
                }
                Broadcast(new ControlEvent { Event = "paused" });
                return Ok();
            case "resume":
                if (machine is null)
                    return Fail("the machine is not running");
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
                Broadcast(new ControlEvent { Event = "resumed" });
                return Ok();
            case "shutdown":
                if (machine is null)
                    return Fail("the machine is not running");
                var i8042 = machine.Devices.OfType<I8042>().FirstOrDefault();
                if (i8042 is null || !i8042.InjectCtrlAltDel())
                    return Fail("the guest's keyboard controller is not accepting keys (no Ctrl-Alt-Del possible)");
                return Ok();
            case "power-button":
                if (machine is null)
                    return Fail("the machine is not running");
                var pm = machine.Devices.OfType<AcpiPmDevice>().FirstOrDefault();
                if (pm is null || !pm.PowerButtonEnabled)
                    return Fail("the guest has not enabled the ACPI power button (no ACPI OS listening)");
                pm.PressPowerButton();
                return Ok();
            case "reset":
                if (machine is null)
                    return Fail("the machine is not running");
                lock (_lock)
                {
                    if (_saved)
                        return Fail("the machine was saved and is stopping");
                    _paused = false;
                }
                machine.RequestStop(MachineExit.Reset("reboot requested through the control socket"));
                Broadcast(new ControlEvent { Event = "reboot" });
                return Ok();
            case "stop":
                runner.RequestStop(MachineExit.UserStop("stopped through the control socket"));
                return Ok();
            case "stats":
                var response = new ControlResponse
                {
                    Ok = true, Name = _name, Pid = Environment.ProcessId, State = StateName(machine),
                    UptimeSeconds = _uptime.Elapsed.TotalSeconds, Boots = runner.Boots, Vcpus = machine?.Config.CpuCount,
                    MemoryBytes = machine?.Config.MemoryBytes, ConsoleBytes = Interlocked.Read(ref _consoleBytes),
                    Exits = [],
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
            case "console" or "watch":
                return Ok();
            case "save" or "snapshot":
                if (_migration.IsRunning)
                    return Fail(MigrationBusy);
                return SaveSnapshot(request, machine);
            case "migrate":
                if (machine is null)
                    return Fail("the machine is not running");
                if (Volatile.Read(ref _paused))
                    return Fail("the machine is paused; resume it before migrating");
                return _migration.Start(runner, machine, request, Announce, leftPaused: () =>
                {
                    lock (_lock)
                        _paused = true;
                    Broadcast(new ControlEvent { Event = "paused" });
                });
            case "migrate-abort":
                return _migration.Abort();
            default:
                return Fail($"unknown command '{request.Command}' (status, pause, resume, shutdown, power-button, reset, stop, stats, console, watch, save, snapshot, migrate, migrate-abort)");
        }
    }

    /// <summary><c>save</c>: pause, write, stop the VM (virsh save). <c>snapshot</c>: pause, write, resume (unless
    /// a client had paused it). The lock keeps pause/resume requests out while the file is written.</summary>
    private ControlResponse SaveSnapshot(ControlRequest request, Machine? machine)
    {
        if (machine is null)
            return Fail("the machine is not running");
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
                return Fail(e is Snapshot.SnapshotException or IOException or UnauthorizedAccessException
                    ? e.Message : $"{request.Command} failed: {e.GetType().Name}: {e.Message}");
            }
            // A saved machine stays paused until Serve stops it, after sending this reply.
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

    /// <summary>A migration pauses and resumes the machine itself (throttling, the stop-and-copy); a client's pause,
    /// resume or snapshot meanwhile could let the vCPUs run after the last dirty pages were collected.</summary>
    private const string MigrationBusy = "a migration is running (migrate-abort first)";

    private string StateName(Machine? machine) =>
        machine is null ? "stopping" : Volatile.Read(ref _paused) ? "paused" : "running";

    private static ControlResponse Ok() => new() { Ok = true };

    private static ControlResponse Fail(string error) => new() { Ok = false, Error = error };

    private static void Send(Socket socket, ControlResponse response)
    {
        byte[] line = JsonSerializer.SerializeToUtf8Bytes(response, ControlJsonContext.Default.ControlResponse);
        socket.Send(line);
        socket.Send("\n"u8);
    }

    private void Broadcast(ControlEvent e, bool isExit = false)
    {
        byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(e, ControlJsonContext.Default.ControlEvent), (byte)'\n'];
        Socket[] watchers;
        lock (_lock)
        {
            if (isExit)
                _exitLine = line;
            watchers = [.. _watchers];
        }
        foreach (var w in watchers)
        {
            try
            {
                w.Send(line);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                lock (_lock)
                    _watchers.Remove(w);
                w.Dispose();
            }
        }
    }

    private void AttachConsole(Socket client, NetworkStream stream, bool history)
    {
        client.SendTimeout = 2000;
        lock (_lock)
        {
            if (history)
            {
                long start = Math.Max(0, _historyLength - HistoryBytes);
                var replay = new byte[_historyLength - start];
                for (long i = start; i < _historyLength; i++)
                    replay[i - start] = _history[i % HistoryBytes];
                try
                {
                    client.Send(replay);
                }
                catch (SocketException)
                {
                    client.Dispose();
                    return;
                }
            }
            _consoles.Add(client);
        }
        // Input: the client's bytes go to the guest's console until it disconnects.
        var buffer = new byte[1024];
        try
        {
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                _toGuest.Write(buffer, 0, n);
                _toGuest.Flush();
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
        lock (_lock)
            _consoles.Remove(client);
        client.Dispose();
    }

    private void PumpOutput()
    {
        var buffer = new byte[8192];
        while (true)
        {
            int n;
            try
            {
                n = _fromGuest.Read(buffer);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return;
            }
            if (n == 0)
                return;
            Interlocked.Add(ref _consoleBytes, n);
            if (_echoToStdout)
            {
                try
                {
                    Interop.Libc.WriteAll(1, buffer.AsSpan(0, n));
                }
                catch (Interop.SystemCallException)
                {
                }
            }
            Socket[] consoles;
            lock (_lock)
            {
                for (int i = 0; i < n; i++)
                    _history[(_historyLength + i) % HistoryBytes] = buffer[i];
                _historyLength += n;
                consoles = [.. _consoles];
            }
            foreach (var c in consoles)
            {
                try
                {
                    c.Send(buffer.AsSpan(0, n));
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    lock (_lock)
                        _consoles.Remove(c);
                    c.Dispose();
                }
            }
        }
    }

    public void Dispose()
    {
        Socket[] all;
        lock (_lock)
        {
            if (_closed)
                return;
            _closed = true;
            all = [.. _consoles, .. _watchers];
            _consoles.Clear();
            _watchers.Clear();
        }
        _listener.Dispose();
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
        foreach (var s in all)
        {
            try
            {
                s.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }
            s.Dispose();
        }
    }
}
