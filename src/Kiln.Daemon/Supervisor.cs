using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Kiln.Vmm.Control;

namespace Kiln.Daemon;

/// <summary>Owns the domains: their definitions (through the store), their VMM processes (one `kiln run
/// --control-socket` per running domain, in its own session so it outlives the daemon) and their states. A domain's
/// state comes from its VMM's watch connection: events while it runs, an exit event when it ends cleanly, and a
/// connection that drops without one when the VMM died (crashed).</summary>
public sealed partial class Supervisor : IDisposable
{
    private readonly DomainStore _store;
    private readonly string[] _kilnCommand;
    private readonly object _lock = new();
    private readonly Dictionary<string, Domain> _domains = new(StringComparer.Ordinal);
    private readonly List<Channel<LifecycleEvent>> _subscribers = [];
    private bool _disposed;

    public sealed class Domain(DomainDefinition definition)
    {
        public DomainDefinition Definition { get; set; } = definition;
        public DomainState State { get; set; } = DomainState.ShutOff;
        public string? Reason { get; set; }
        public RuntimeRecord? Runtime { get; set; }
        public Process? Child { get; set; }
        public Socket? Watch { get; set; }
        public bool Stopping { get; set; }
        public bool Removed { get; set; }
        public readonly SemaphoreSlim Gate = new(1, 1);
        public TaskCompletionSource Ended { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <param name="kilnCommand">The program and leading arguments that run the `kiln` CLI (e.g. dotnet kiln.dll).</param>
    public Supervisor(DomainStore store, string[] kilnCommand)
    {
        _store = store;
        _kilnCommand = kilnCommand;
    }

    /// <summary>Loads the definitions, re-attaches to VMMs that survived a daemon restart, marks the dead ones
    /// crashed, then starts autostart domains.</summary>
    public async Task InitializeAsync()
    {
        foreach (var d in _store.LoadAll())
        {
            var domain = new Domain(d);
            lock (_lock)
                _domains[d.Name] = domain;
            if (_store.LoadLastExit(d.Name) is { } last)
            {
                domain.State = last.State == "crashed" ? DomainState.Crashed : DomainState.ShutOff;
                domain.Reason = last.Reason;
            }
            if (_store.LoadRuntime(d.Name) is { } runtime)
                await ReattachAsync(domain, runtime);
        }
        foreach (var domain in Snapshot())
        {
            if (domain.Definition.Autostart && domain.State is DomainState.ShutOff or DomainState.Crashed)
            {
                try
                {
                    await StartAsync(domain.Definition.Name);
                }
                catch (Exception e) when (e is DaemonException or DomainFormatException)
                {
                    Console.Error.WriteLine($"kiln daemon: autostart of '{domain.Definition.Name}' failed: {e.Message}");
                }
            }
        }
    }

    private async Task ReattachAsync(Domain domain, RuntimeRecord runtime)
    {
        string name = domain.Definition.Name;
        if (ProcessStartTicks(runtime.Pid) == runtime.StartTicks)
        {
            try
            {
                var socket = ControlClient.Connect(runtime.Socket);
                var status = await StartWatchAsync(domain, socket);
                domain.Runtime = runtime;
                domain.State = status.State == "paused" ? DomainState.Paused : DomainState.Running;
                domain.Reason = "re-attached after a daemon restart";
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or JsonException)
            {
                Console.Error.WriteLine($"kiln daemon: '{name}': VMM pid {runtime.Pid} does not answer on {runtime.Socket}: {e.Message}");
            }
        }
        MarkEnded(domain, DomainState.Crashed, $"the VMM (pid {runtime.Pid}) ended while the daemon was not running");
    }

    public IReadOnlyList<Domain> Snapshot()
    {
        lock (_lock)
            return [.. _domains.Values.OrderBy(d => d.Definition.Name, StringComparer.Ordinal)];
    }

    public Domain Get(string name)
    {
        lock (_lock)
            return _domains.TryGetValue(name, out var d) ? d : throw new DaemonException(404, $"domain '{name}' not found");
    }

    // ---- definitions ----

    public Domain Define(DomainDefinition definition)
    {
        Domain domain;
        lock (_lock)
        {
            foreach (var other in _domains.Values)
            {
                if (other.Definition.Name != definition.Name && string.Equals(other.Definition.Uuid, definition.Uuid, StringComparison.OrdinalIgnoreCase))
                    throw new DaemonException(409, $"domain '{other.Definition.Name}' already has uuid {definition.Uuid}", "uuid");
            }
            if (_domains.TryGetValue(definition.Name, out var existing))
            {
                // Like virsh define on an existing name: an update, which must keep the uuid.
                if (!string.Equals(existing.Definition.Uuid, definition.Uuid, StringComparison.OrdinalIgnoreCase))
                    throw new DaemonException(409, $"domain '{definition.Name}' already exists with uuid {existing.Definition.Uuid}", "name");
                existing.Definition = definition;
                domain = existing;
            }
            else
            {
                domain = new Domain(definition);
                _domains[definition.Name] = domain;
            }
            _store.Save(definition);
        }
        Publish(definition.Name, "defined");
        return domain;
    }

    public void Undefine(string name)
    {
        var domain = Get(name);
        domain.Gate.Wait();
        try
        {
            if (domain.State is DomainState.Running or DomainState.Paused)
                throw new DaemonException(409, $"domain '{name}' is running; destroy it first");
            lock (_lock)
            {
                _domains.Remove(name);
                domain.Removed = true;
            }
            _store.Delete(name);
        }
        finally
        {
            domain.Gate.Release();
        }
        Publish(name, "undefined");
    }

    public void SetAutostart(string name, bool enabled)
    {
        var domain = Get(name);
        lock (_lock)
        {
            domain.Definition.Autostart = enabled;
            _store.Save(domain.Definition);
        }
    }

    public string AttachDisk(string name, AttachDiskRequest request)
    {
        var domain = Get(name);
        lock (_lock)
        {
            var d = domain.Definition;
            if (d.Disks.Any(x => x.Target == request.Target))
                throw new DaemonException(409, $"domain '{name}' already has a disk at {request.Target}", "target");
            var disk = new DomainDisk { Path = request.Source, Target = request.Target, Format = request.Format ?? "raw", ReadOnly = request.ReadOnly };
            var copy = DomainCodec.FromJson(DomainCodec.ToJson(d));
            copy.Disks.Add(disk);
            DomainCodec.Validate(copy);
            d.Disks.Add(disk);
            _store.Save(d);
        }
        return domain.State is DomainState.Running or DomainState.Paused
            ? $"disk {request.Target} attached to the persistent definition; it applies at the next start (virtio hot-plug is not supported)"
            : $"disk {request.Target} attached";
    }

    public string DetachDisk(string name, string target)
    {
        var domain = Get(name);
        lock (_lock)
        {
            int removed = domain.Definition.Disks.RemoveAll(x => x.Target == target || x.Path == target);
            if (removed == 0)
                throw new DaemonException(404, $"domain '{name}' has no disk {target}", "target");
            _store.Save(domain.Definition);
        }
        return domain.State is DomainState.Running or DomainState.Paused
            ? $"disk {target} detached from the persistent definition; it applies at the next start"
            : $"disk {target} detached";
    }

    // ---- lifecycle ----

    public async Task StartAsync(string name)
    {
        var domain = Get(name);
        await domain.Gate.WaitAsync();
        try
        {
            if (domain.Removed)
                throw new DaemonException(404, $"domain '{name}' not found");
            if (domain.State is DomainState.Running or DomainState.Paused)
                throw new DaemonException(409, $"domain '{name}' is already running");
            await LaunchAsync(domain);
        }
        finally
        {
            domain.Gate.Release();
        }
        Publish(name, "started");
    }

    /// <param name="runArguments">The `kiln run` arguments; null: those of the definition (a boot). A restore
    /// passes `--restore FILE`, an incoming migration the definition's plus `--incoming ...`.</param>
    private async Task LaunchAsync(Domain domain, List<string>? runArguments = null, string reason = "booted",
        IReadOnlyDictionary<string, string>? extraEnvironment = null)
    {
        var d = domain.Definition;
        string socketPath = _store.SocketPath(d.Name);
        string logPath = _store.LogPath(d.Name);
        File.Delete(socketPath);
        var args = runArguments ?? DomainCodec.RunArguments(d);
        args.AddRange(["--control-socket", socketPath, "--name", d.Name]);
        // sh execs setsid which execs kiln: the pid stays the VMM's, and the VMM gets its own session so that
        // neither a daemon restart nor a signal to the daemon's process group reaches it.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec nice -n \"$KILN_VM_NICE\" setsid \"$@\" </dev/null >>\"$KILN_VM_LOG\" 2>&1");
        psi.ArgumentList.Add("kiln-vmm");
        foreach (var a in _kilnCommand.Concat(args))
            psi.ArgumentList.Add(a);
        psi.Environment["KILN_VM_LOG"] = logPath;
        foreach (var (key, value) in extraEnvironment ?? new Dictionary<string, string>())
            psi.Environment[key] = value;
        // A daemon running at a raised priority (nice < 0) starts its VMMs back at nice 0: guests are not favoured.
        psi.Environment["KILN_VM_NICE"] = Math.Max(0, -Native.getpriority(0, 0)).ToString(CultureInfo.InvariantCulture);
        File.AppendAllText(logPath, $"\n--- {DateTimeOffset.Now:O} starting {d.Name}\n");
        long logStart = new FileInfo(logPath).Length;
        var child = Process.Start(psi) ?? throw new DaemonException(500, "cannot start the VMM process");
        domain.Child = child;
        var sw = Stopwatch.StartNew();
        Socket? socket = null;
        while (socket is null)
        {
            if (child.HasExited)
            {
                string log = ReadFrom(logPath, logStart).Trim();
                int status = child.ExitCode; // read before Dispose, which forgets it
                domain.Child = null;
                child.Dispose();
                throw new DaemonException(500, $"the VMM exited at start (status {status}): {LastLine(log)}");
            }
            if (File.Exists(socketPath))
            {
                try
                {
                    socket = ControlClient.Connect(socketPath);
                    break;
                }
                catch (SocketException)
                {
                }
            }
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
            {
                child.Kill();
                throw new DaemonException(500, "the VMM did not open its control socket within 30 s");
            }
            await Task.Delay(2);
        }
        var runtime = new RuntimeRecord
        {
            Pid = child.Id, StartTicks = ProcessStartTicks(child.Id), Socket = socketPath, StartedAt = DateTimeOffset.UtcNow,
        };
        domain.Runtime = runtime;
        domain.Stopping = false;
        domain.Ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _store.SaveRuntime(d.Name, runtime);
        await StartWatchAsync(domain, socket);
        domain.State = DomainState.Running;
        domain.Reason = reason;
    }

    private static string ReadFrom(string path, long offset)
    {
        using var f = File.OpenRead(path);
        f.Seek(offset, SeekOrigin.Begin);
        return new StreamReader(f).ReadToEnd();
    }

    private static string LastLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no output)" : lines[^1];
    }

    /// <summary>Subscribes to the VMM's events and returns its status; the watch runs until the VMM ends.</summary>
    private async Task<ControlResponse> StartWatchAsync(Domain domain, Socket socket)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        var reader = new StreamReader(stream, Encoding.UTF8);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var status = await ControlClient.SendAsync(stream, reader, new ControlRequest { Command = "status" }, cts.Token);
        var ok = await ControlClient.SendAsync(stream, reader, new ControlRequest { Command = "watch" }, cts.Token);
        if (!ok.Ok)
            throw new IOException(ok.Error ?? "watch refused");
        domain.Watch = socket;
        _ = Task.Run(() => WatchLoopAsync(domain, stream, reader));
        return status;
    }

    private async Task WatchLoopAsync(Domain domain, NetworkStream stream, StreamReader reader)
    {
        string name = domain.Definition.Name;
        ControlEvent? exit = null;
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                var e = JsonSerializer.Deserialize(line, ControlJsonContext.Default.ControlEvent);
                switch (e?.Event)
                {
                    case "paused":
                        domain.State = DomainState.Paused;
                        domain.Reason = "suspended";
                        Publish(name, "suspended");
                        break;
                    case "resumed":
                        domain.State = DomainState.Running;
                        domain.Reason = "unpaused";
                        Publish(name, "resumed");
                        break;
                    case "reboot":
                        domain.State = DomainState.Running;
                        Publish(name, "rebooted");
                        break;
                    case "exit":
                        exit = e;
                        break;
                    case "incoming-complete":
                        IncomingCompleted(domain);
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or JsonException or ObjectDisposedException)
        {
        }
        await stream.DisposeAsync();
        if (_disposed)
            return;
        // The VMM closes the socket just before it exits; reap it so a crash reports its signal.
        var child = domain.Child;
        string? how = null;
        if (child is not null)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await child.WaitForExitAsync(wait.Token);
                int status = child.ExitCode;
                how = status > 128 ? $"signal {status - 128}" : $"status {status}";
            }
            catch (OperationCanceledException)
            {
            }
            child.Dispose();
            domain.Child = null;
        }
        else if (domain.Runtime is { } rt)
        {
            // Not our child (re-attached after a restart): wait for the pid to go away.
            for (int i = 0; i < 100 && ProcessStartTicks(rt.Pid) == rt.StartTicks; i++)
                await Task.Delay(50);
        }
        if (_disposed)
            return;
        DomainState state;
        string reason;
        if (exit is null)
        {
            state = DomainState.Crashed;
            reason = how is null ? "the VMM process died without reporting an exit" : $"the VMM process died ({how})";
        }
        else
        {
            (state, reason) = exit.Kind switch
            {
                "PowerOff" => (DomainState.ShutOff, "shutdown: " + exit.Message),
                "Reset" => (DomainState.ShutOff, "shutdown: guest reset (on_reboot=destroy)"),
                "DebugExit" => (DomainState.ShutOff, $"guest exited with status {exit.Code}"),
                "UserStop" => (DomainState.ShutOff, domain.Stopping ? "destroyed" : exit.Message ?? "stopped"),
                "Migrated" => (DomainState.ShutOff, exit.Message ?? "migrated"),
                _ => (DomainState.Crashed, $"{exit.Kind}: {exit.Message}"),
            };
        }
        if (IncomingEnded(domain, exit?.Message ?? how))
            return;
        MarkEnded(domain, state, reason);
        Publish(name, state == DomainState.Crashed ? "crashed" : domain.Stopping ? "destroyed" : "stopped", reason);
        if (state == DomainState.Crashed && domain.Definition.OnCrash == "restart" && !domain.Removed)
        {
            await Task.Delay(500);
            try
            {
                await StartAsync(name);
            }
            catch (Exception e) when (e is DaemonException or DomainFormatException)
            {
                Console.Error.WriteLine($"kiln daemon: restarting '{name}' failed: {e.Message}");
            }
        }
    }

    private void MarkEnded(Domain domain, DomainState state, string reason)
    {
        string name = domain.Definition.Name;
        if (domain.Runtime is { } rt)
        {
            try
            {
                File.Delete(rt.Socket);
            }
            catch (IOException)
            {
            }
        }
        try
        {
            File.Delete(_store.SocketPath(name));
        }
        catch (IOException)
        {
        }
        domain.Runtime = null;
        domain.Watch = null;
        domain.State = state;
        domain.Reason = reason;
        if (!domain.Removed)
        {
            _store.DeleteRuntime(name);
            _store.SaveLastExit(name, new LastExitRecord { State = state.Name(), Reason = reason });
        }
        domain.Ended.TrySetResult();
    }

    private async Task<ControlResponse> ControlAsync(Domain domain, string command)
    {
        var rt = domain.Runtime;
        if (rt is null || domain.State is not (DomainState.Running or DomainState.Paused))
            throw new DaemonException(409, $"domain '{domain.Definition.Name}' is not running");
        ControlResponse response;
        try
        {
            response = await ControlClient.RequestAsync(rt.Socket, command, TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            throw new DaemonException(409, $"domain '{domain.Definition.Name}': the VMM does not answer ({e.Message})");
        }
        if (!response.Ok)
            throw new DaemonException(409, $"domain '{domain.Definition.Name}': {response.Error}");
        return response;
    }

    public async Task SuspendAsync(string name)
    {
        var domain = Get(name);
        await ControlAsync(domain, "pause");
        domain.State = DomainState.Paused;
        domain.Reason = "suspended";
    }

    public async Task ResumeAsync(string name)
    {
        var domain = Get(name);
        await ControlAsync(domain, "resume");
        domain.State = DomainState.Running;
        domain.Reason = "unpaused";
    }

    public async Task RebootAsync(string name) => await ControlAsync(Get(name), "reset");

    /// <summary>Graceful: Ctrl-Alt-Del through the i8042, then waits for the guest to power off.</summary>
    public async Task ShutdownAsync(string name, TimeSpan timeout)
    {
        var domain = Get(name);
        var ended = domain.Ended.Task;
        await ControlAsync(domain, "shutdown");
        Publish(name, "shutdown-requested");
        if (await Task.WhenAny(ended, Task.Delay(timeout)) != ended)
            throw new DaemonException(504, $"domain '{name}' did not shut down within {timeout.TotalSeconds:0.#} s " +
                "(the guest ignored Ctrl-Alt-Del); it is still running: use 'kiln destroy' to stop it");
    }

    /// <summary>Stops the VMM at once (virsh destroy): asks it to stop, then SIGKILL if it does not within 5 s.</summary>
    public async Task DestroyAsync(string name)
    {
        var domain = Get(name);
        var ended = domain.Ended.Task;
        var rt = domain.Runtime;
        if (rt is null || domain.State is not (DomainState.Running or DomainState.Paused))
            throw new DaemonException(409, $"domain '{name}' is not running");
        domain.Stopping = true;
        try
        {
            await ControlClient.RequestAsync(rt.Socket, "stop", TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
        }
        if (await Task.WhenAny(ended, Task.Delay(5000)) != ended)
        {
            if (ProcessStartTicks(rt.Pid) == rt.StartTicks)
                Native.kill(rt.Pid, 9);
            await Task.WhenAny(ended, Task.Delay(5000));
        }
    }

    // ---- queries ----

    public DomainSummary Summary(Domain d) => new()
    {
        Name = d.Definition.Name, Uuid = d.Definition.Uuid, State = d.State.Name(), Reason = d.Reason,
        Pid = d.Runtime?.Pid, Autostart = d.Definition.Autostart,
    };

    public DomainInfo Info(Domain d) => new()
    {
        Name = d.Definition.Name, Uuid = d.Definition.Uuid, State = d.State.Name(), Reason = d.Reason, Pid = d.Runtime?.Pid,
        Vcpus = d.Definition.Vcpus, MemoryMiB = d.Definition.MemoryMiB, Autostart = d.Definition.Autostart,
        UptimeSeconds = d.Runtime is { } rt ? (DateTimeOffset.UtcNow - rt.StartedAt).TotalSeconds : null,
        Definition = d.Definition,
    };

    public async Task<DomainStats> StatsAsync(string name)
    {
        var domain = Get(name);
        var stats = new DomainStats { Name = name, State = domain.State.Name() };
        if (domain.Runtime is { } rt && domain.State is DomainState.Running or DomainState.Paused)
        {
            stats.Vmm = await ControlAsync(domain, "stats");
            var (cpu, rss) = ProcessUsage(rt.Pid);
            stats.CpuTimeSeconds = cpu;
            stats.RssBytes = rss;
        }
        return stats;
    }

    public string ConsoleSocket(string name)
    {
        var domain = Get(name);
        return domain.Runtime is { } rt && domain.State is DomainState.Running or DomainState.Paused
            ? rt.Socket
            : throw new DaemonException(409, $"domain '{name}' is not running");
    }

    // ---- events ----

    public ChannelReader<LifecycleEvent> Subscribe(out Action unsubscribe)
    {
        var channel = Channel.CreateBounded<LifecycleEvent>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_subscribers)
            _subscribers.Add(channel);
        unsubscribe = () =>
        {
            lock (_subscribers)
                _subscribers.Remove(channel);
        };
        return channel.Reader;
    }

    private void Publish(string domain, string what, string? detail = null)
    {
        var e = new LifecycleEvent { Time = DateTimeOffset.UtcNow, Domain = domain, Event = what, Detail = detail };
        lock (_subscribers)
            foreach (var s in _subscribers)
                s.Writer.TryWrite(e);
    }

    // ---- /proc ----

    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks), or -1 when there is no such process.</summary>
    public static long ProcessStartTicks(int pid)
    {
        var fields = StatFields(pid);
        return fields is null ? -1 : long.Parse(fields[19], CultureInfo.InvariantCulture);
    }

    /// <summary>The fields of /proc/PID/stat after the command name (field 3 is index 0).</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            var fields = stat[(close + 2)..].Split(' ');
            // A zombie has exited: it is not a running VMM.
            return fields[0] == "Z" ? null : fields;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static (double? Cpu, long? Rss) ProcessUsage(int pid)
    {
        var f = StatFields(pid);
        if (f is null)
            return (null, null);
        double cpu = (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0;
        long rss = long.Parse(f[21], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        return (cpu, rss);
    }

    public void Dispose()
    {
        // Running VMMs are left running: a restarted daemon re-attaches to them.
        _disposed = true;
        foreach (var d in Snapshot())
        {
            d.Watch?.Dispose();
            d.Child?.Dispose();
        }
    }
}
