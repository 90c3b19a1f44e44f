using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Kiln.Contracts.Control;

namespace Kiln.Daemon;

/// <summary>Owns the domains: their definitions (through the store), their VMM processes (one `kiln run
/// --control-socket` per running domain, in its own session so it outlives the daemon) and their states. A domain's
/// state comes from its VMM's watch connection: events while it runs, an exit event when it ends cleanly, and a
/// connection that drops without one when the VMM died (crashed).</summary>
public sealed partial class Supervisor : IDisposable
{
    private readonly DomainStore _store;
    private readonly VmmLauncher _launcher;

    // Launches running at once (see StartAsync).
    private readonly SemaphoreSlim _launchSlots = new(4 * Environment.ProcessorCount);
    private readonly object _lock = new();
    private readonly Dictionary<string, Domain> _domains = new(StringComparer.Ordinal);

    // What readers see: a copy of _domains made after each change, so list and lookups never wait for _lock
    // (held across a definition's fsync) and take no lock at all.
    private volatile DomainIndex _index = DomainIndex.Empty;

    private sealed record DomainIndex(Domain[] Sorted, Dictionary<string, Domain> ByName)
    {
        public static readonly DomainIndex Empty = new([], new Dictionary<string, Domain>(StringComparer.Ordinal));
    }

    /// <summary>Publishes a new <see cref="_index"/>; called under _lock after every change to _domains.</summary>
    private void Reindex() =>
        _index = new DomainIndex([.. _domains.Values.OrderBy(d => d.Definition.Name, StringComparer.Ordinal)],
            new Dictionary<string, Domain>(_domains, StringComparer.Ordinal));

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
    /// <param name="spareVmm">Keep one VMM process started ahead (see <see cref="VmmLauncher"/>).</param>
    public Supervisor(DomainStore store, string[] kilnCommand, bool spareVmm = true)
    {
        _store = store;
        _launcher = new VmmLauncher(kilnCommand, store.Root, Path.Combine(store.LogDir, "vmm-standby.log"), spareVmm);
    }

    /// <summary>Loads the definitions, re-attaches to VMMs that survived a daemon restart, marks the dead ones
    /// crashed, then starts autostart domains.</summary>
    public async Task InitializeAsync()
    {
        foreach (var d in _store.LoadAll())
        {
            var domain = new Domain(d);
            lock (_lock)
            {
                _domains[d.Name] = domain;
                Reindex();
            }
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

    public IReadOnlyList<Domain> Snapshot() => _index.Sorted;

    public Domain Get(string name) =>
        _index.ByName.TryGetValue(name, out var d) ? d : throw new DaemonException(404, $"domain '{name}' not found");

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
                Reindex();
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
                Reindex();
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
        Action? ended = null;
        await domain.Gate.WaitAsync();
        try
        {
            if (domain.Removed)
                throw new DaemonException(404, $"domain '{name}' not found");
            if (domain.State is DomainState.Running or DomainState.Paused)
                throw new DaemonException(409, $"domain '{name}' is already running");
            // Paced: VMMs that start together share the CPU their start-up needs, so beyond a few at once every
            // one of them (and everything else on the host, the daemon's clients too) only gets slower.
            await _launchSlots.WaitAsync();
            try
            {
                ended = await LaunchAsync(domain);
            }
            finally
            {
                _launchSlots.Release();
            }
        }
        finally
        {
            domain.Gate.Release();
        }
        Publish(name, "started");
        ended?.Invoke();
    }

    /// <param name="source">Where the first machine comes from: null boots the definition's kernel; a restore names
    /// its snapshot file, an incoming migration its listening address (and <paramref name="migrationToken"/>).</param>
    /// <returns>null, or when the VMM has already ended, what publishes its end.</returns>
    private async Task<Action?> LaunchAsync(Domain domain, Contracts.Spec.StartSource? source = null, string reason = "booted",
        string? migrationToken = null)
    {
        var d = domain.Definition;
        string socketPath = _store.SocketPath(d.Name);
        string logPath = _store.LogPath(d.Name);
        File.Delete(socketPath);
        Contracts.Spec.VmSpec spec;
        try
        {
            spec = DomainSpec.From(d, source);
        }
        catch (Contracts.Spec.VmSpecException e)
        {
            throw new DaemonException(400, $"domain '{d.Name}' cannot start: {e.Message}", e.Field);
        }
        var launch = new VmmLaunch { Spec = spec, ControlSocket = socketPath, LogPath = logPath, MigrationToken = migrationToken };
        File.AppendAllText(logPath, $"\n--- {DateTimeOffset.Now:O} starting {d.Name}\n");
        long logStart = new FileInfo(logPath).Length;
        var child = _launcher.Launch(launch);
        domain.Child = child;
        var reply = await VmmLauncher.ReadReplyAsync(child, TimeSpan.FromSeconds(30));
        if (reply is not { Ok: true })
        {
            string log = ReadFrom(logPath, logStart).Trim();
            if (reply is null)
                await WaitBrieflyAsync(child);
            string why = reply?.Error ?? (child.HasExited
                ? $"the VMM exited at start (status {child.ExitCode}): {LastLine(log)}"
                : "the VMM did not answer its launch within 30 s");
            if (!child.HasExited)
                child.Kill();
            domain.Child = null;
            child.Dispose();
            throw reply?.Field is { } field
                ? new DaemonException(400, $"domain '{d.Name}' cannot start: {why}", field)
                : new DaemonException(500, reply is null ? why : $"domain '{d.Name}' cannot start: {why}");
        }
        Socket socket;
        try
        {
            socket = ControlClient.Connect(socketPath);
        }
        catch (SocketException)
        {
            // Built and already gone (a guest that ends at once): the start happened, and so did the end.
            return await EndedBeforeWatchAsync(domain, child, logPath, logStart);
        }
        var runtime = new RuntimeRecord
        {
            Pid = child.Id, StartTicks = ProcessStartTicks(child.Id), Socket = socketPath, StartedAt = DateTimeOffset.UtcNow,
        };
        domain.Runtime = runtime;
        domain.Stopping = false;
        domain.Ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _store.SaveRuntime(d.Name, runtime);
        try
        {
            await StartWatchAsync(domain, socket);
        }
        catch (Exception e) when (e is IOException or SocketException or JsonException or OperationCanceledException)
        {
            // A guest that ends at once (a test guest, a kernel that fails early) can close the control socket
            // before the watch is set up: the domain started, and has already stopped.
            return await EndedBeforeWatchAsync(domain, child, logPath, logStart);
        }
        domain.State = DomainState.Running;
        domain.Reason = reason;
        return null;
    }

    /// <summary>Reaps a VMM that ended before its watch was set up, and returns the publication of its end (made
    /// after the start's own event). The VMM's last log line says why it ended (`kiln: PowerOff: ACPI S5 ...`).</summary>
    private async Task<Action> EndedBeforeWatchAsync(Domain domain, Process child, string logPath, long logStart)
    {
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        int? status = null;
        try
        {
            await child.WaitForExitAsync(wait.Token);
            status = child.ExitCode;
        }
        catch (OperationCanceledException)
        {
            Kiln.Interop.ProcessCalls.Signal(child.Id, Kiln.Interop.ProcessCalls.SIGKILL);
        }
        child.Dispose();
        domain.Child = null;
        string last = LastLine(ReadFrom(logPath, logStart));
        string why = last.StartsWith("kiln: ", StringComparison.Ordinal) ? last["kiln: ".Length..] : "";
        var (state, reason) = status switch
        {
            0 when why.StartsWith("PowerOff: ", StringComparison.Ordinal) => (DomainState.ShutOff, "shutdown: " + why["PowerOff: ".Length..]),
            0 when why.StartsWith("Reset: ", StringComparison.Ordinal) => (DomainState.ShutOff, "shutdown: guest reset (on_reboot=destroy)"),
            0 => (DomainState.ShutOff, "shutdown: the guest stopped right after its start"),
            > 128 => (DomainState.Crashed, $"the VMM process died (signal {status - 128})"),
            null => (DomainState.Crashed, "the VMM stopped answering right after its start"),
            _ when why.StartsWith("DebugExit: ", StringComparison.Ordinal) => (DomainState.ShutOff, $"guest exited with status {status}"),
            _ => (DomainState.Crashed, why.Length > 0 ? why : $"the VMM exited with status {status}"),
        };
        MarkEnded(domain, state, reason);
        return () => Publish(domain.Definition.Name, state == DomainState.Crashed ? "crashed" : "stopped", reason);
    }

    private static async Task WaitBrieflyAsync(Process child)
    {
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await child.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
        }
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
        int? status = null;
        if (child is not null)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await child.WaitForExitAsync(wait.Token);
                status = child.ExitCode;
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
        string? how = status is null ? null : status > 128 ? $"signal {status - 128}" : $"status {status}";
        DomainState state;
        string reason;
        if (exit is null && status == 0)
        {
            // A clean exit whose announcement never arrived is still not a crash.
            state = DomainState.ShutOff;
            reason = "shutdown: the VMM exited cleanly without saying why";
        }
        else if (exit is null)
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

    /// <summary>How long a guest that listens for the ACPI power button gets to act on it before it also gets
    /// Ctrl-Alt-Del (a guest may enable the button without acting on it, like a busybox system).</summary>
    private static readonly TimeSpan PowerButtonGrace = TimeSpan.FromSeconds(5);

    /// <summary>Graceful: the ACPI power button if the guest listens for it, Ctrl-Alt-Del through the i8042 if it
    /// does not (or has not powered off after <see cref="PowerButtonGrace"/>), then waits for the guest to power
    /// off.</summary>
    public async Task ShutdownAsync(string name, TimeSpan timeout)
    {
        var domain = Get(name);
        var ended = domain.Ended.Task;
        var deadline = Task.Delay(timeout);
        bool pressed;
        try
        {
            await ControlAsync(domain, "power-button");
            pressed = true;
        }
        catch (DaemonException)
        {
            pressed = false; // no ACPI OS listening (or a VMM without the button): the keyboard it is
        }
        Publish(name, "shutdown-requested", pressed ? "ACPI power button" : "Ctrl-Alt-Del");
        if (pressed)
        {
            var grace = Task.Delay(TimeSpan.FromTicks(Math.Min(PowerButtonGrace.Ticks, timeout.Ticks / 2)));
            if (await Task.WhenAny(ended, grace) == ended)
                return;
        }
        try
        {
            await ControlAsync(domain, "shutdown");
        }
        catch (DaemonException) when (pressed)
        {
            // The button was pressed; a keyboard that takes no keys leaves that as the only request.
        }
        if (await Task.WhenAny(ended, deadline) != ended)
            throw new DaemonException(504, $"domain '{name}' did not shut down within {timeout.TotalSeconds:0.#} s " +
                $"(the guest ignored {(pressed ? "the ACPI power button and " : "")}Ctrl-Alt-Del); it is still running: use 'kiln destroy' to stop it");
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
                Kiln.Interop.ProcessCalls.Signal(rt.Pid, Kiln.Interop.ProcessCalls.SIGKILL);
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
        _launcher.Dispose();
        foreach (var d in Snapshot())
        {
            d.Watch?.Dispose();
            d.Child?.Dispose();
        }
    }
}
