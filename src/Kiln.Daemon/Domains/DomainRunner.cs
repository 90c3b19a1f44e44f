using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Kiln.Contracts.Control;
using Microsoft.Extensions.Logging;

namespace Kiln.Daemon.Domains;

/// <summary>Runs domains' VMMs: launches one (a <see cref="VmmLaunch"/> to a standby process, its typed reply), keeps a
/// watch connection to it whose events set the domain's state (paused, resumed, reboot, exit; a connection that
/// drops without an exit event is a crash), re-attaches to VMMs that outlived a daemon restart, and starts autostart
/// domains. Each running domain is its own VMM process in its own session, so it outlives the daemon.</summary>
public sealed class DomainRunner : IDisposable
{
    private readonly DomainStore _store;
    private readonly DomainRegistry _registry;
    private readonly EventHub _events;
    private readonly VmmLauncher _launcher;
    private readonly ILogger _log;

    // Launches running at once (see StartAsync).
    private readonly SemaphoreSlim _launchSlots = new(4 * Environment.ProcessorCount);
    private bool _disposed;

    /// <param name="kilnCommand">The program and leading arguments that run the `kiln` CLI (e.g. dotnet kiln.dll).</param>
    /// <param name="spareVmm">Keep one VMM process started ahead (see <see cref="VmmLauncher"/>).</param>
    public DomainRunner(DomainStore store, DomainRegistry registry, EventHub events, string[] kilnCommand, bool spareVmm, ILogger log)
    {
        _store = store;
        _registry = registry;
        _events = events;
        _log = log;
        _launcher = new VmmLauncher(kilnCommand, store.Root, Path.Combine(store.LogDir, "vmm-standby.log"), spareVmm, log);
    }

    /// <summary>An incoming migration's VMM runs its guest: the migration service makes it an ordinary domain.</summary>
    public Action<ManagedDomain>? IncomingCompleted { get; set; }

    /// <summary>A VMM ended: true when it was an incoming migration that never ran the guest (the migration service
    /// cleaned up after it), and nothing else is to be done.</summary>
    public Func<ManagedDomain, string?, bool>? IncomingEnded { get; set; }

    /// <summary>Loads the definitions, re-attaches to VMMs that survived a daemon restart, marks the dead ones
    /// crashed, then starts autostart domains.</summary>
    public async Task InitializeAsync()
    {
        foreach (var d in _store.LoadAll())
        {
            var domain = _registry.Load(d);
            if (_store.LoadLastExit(d.Name) is { } last)
            {
                domain.State = last.State == "crashed" ? DomainState.Crashed : DomainState.ShutOff;
                domain.Reason = last.Reason;
            }
            if (_store.LoadRuntime(d.Name) is { } runtime)
                await ReattachAsync(domain, runtime);
        }
        foreach (var domain in _registry.Snapshot())
        {
            if (domain.Definition.Autostart && domain.State is DomainState.ShutOff or DomainState.Crashed)
            {
                try
                {
                    await StartAsync(domain.Definition.Name);
                }
                catch (Exception e) when (e is DaemonException or DomainFormatException)
                {
                    _log.LogWarning($"autostart of '{domain.Definition.Name}' failed: {e.Message}");
                }
            }
        }
    }

    private async Task ReattachAsync(ManagedDomain domain, RuntimeRecord runtime)
    {
        string name = domain.Definition.Name;
        if (ProcessStats.ProcessStartTicks(runtime.Pid) == runtime.StartTicks)
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
                _log.LogWarning($"'{name}': VMM pid {runtime.Pid} does not answer on {runtime.Socket}: {e.Message}");
            }
        }
        MarkEnded(domain, DomainState.Crashed, $"the VMM (pid {runtime.Pid}) ended while the daemon was not running");
    }

    public async Task StartAsync(string name)
    {
        var domain = _registry.Get(name);
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
        _events.Publish(name, "started");
        ended?.Invoke();
    }

    /// <param name="source">Where the first machine comes from: null boots the definition's kernel; a restore names
    /// its snapshot file, an incoming migration its listening address (and <paramref name="migrationToken"/>).</param>
    /// <returns>null, or when the VMM has already ended, what publishes its end.</returns>
    internal async Task<Action?> LaunchAsync(ManagedDomain domain, Contracts.Spec.StartSource? source = null, string reason = "booted",
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
            string log = VmmEndings.ReadFrom(logPath, logStart).Trim();
            if (reply is null)
                await WaitBrieflyAsync(child);
            string why = reply?.Error ?? (child.HasExited
                ? $"the VMM exited at start (status {child.ExitCode}): {VmmEndings.LastLine(log)}"
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
            Pid = child.Id, StartTicks = ProcessStats.ProcessStartTicks(child.Id), Socket = socketPath, StartedAt = DateTimeOffset.UtcNow,
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
    private async Task<Action> EndedBeforeWatchAsync(ManagedDomain domain, Process child, string logPath, long logStart)
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
        var (state, reason) = VmmEndings.FromEarlyExit(status, VmmEndings.LastLine(VmmEndings.ReadFrom(logPath, logStart)));
        MarkEnded(domain, state, reason);
        return () => _events.Publish(domain.Definition.Name, state == DomainState.Crashed ? "crashed" : "stopped", reason);
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

    /// <summary>Subscribes to the VMM's events and returns its status; the watch runs until the VMM ends.</summary>
    private async Task<ControlResponse> StartWatchAsync(ManagedDomain domain, Socket socket)
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

    private async Task WatchLoopAsync(ManagedDomain domain, NetworkStream stream, StreamReader reader)
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
                        _events.Publish(name, "suspended");
                        break;
                    case "resumed":
                        domain.State = DomainState.Running;
                        domain.Reason = "unpaused";
                        _events.Publish(name, "resumed");
                        break;
                    case "reboot":
                        domain.State = DomainState.Running;
                        _events.Publish(name, "rebooted");
                        break;
                    case "exit":
                        exit = e;
                        break;
                    case "incoming-complete":
                        IncomingCompleted?.Invoke(domain);
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
            for (int i = 0; i < 100 && ProcessStats.ProcessStartTicks(rt.Pid) == rt.StartTicks; i++)
                await Task.Delay(50);
        }
        if (_disposed)
            return;
        string? how = status is null ? null : status > 128 ? $"signal {status - 128}" : $"status {status}";
        var (state, reason) = VmmEndings.FromExit(exit, how, status, domain.Stopping);
        if (IncomingEnded?.Invoke(domain, exit?.Message ?? how) == true)
            return;
        // The event goes out before Ended completes: whoever waits for the end (destroy, shutdown) answers its client
        // only after the event is on its way to the subscribers.
        MarkEnded(domain, state, reason, signalEnded: false);
        _events.Publish(name, state == DomainState.Crashed ? "crashed" : domain.Stopping ? "destroyed" : "stopped", reason);
        domain.Ended.TrySetResult();
        if (state == DomainState.Crashed && domain.Definition.OnCrash == "restart" && !domain.Removed)
        {
            await Task.Delay(500);
            try
            {
                await StartAsync(name);
            }
            catch (Exception e) when (e is DaemonException or DomainFormatException)
            {
                _log.LogWarning($"restarting '{name}' failed: {e.Message}");
            }
        }
    }

    internal void MarkEnded(ManagedDomain domain, DomainState state, string reason, bool signalEnded = true)
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
        if (signalEnded)
            domain.Ended.TrySetResult();
    }

    public void Dispose()
    {
        // Running VMMs are left running: a restarted daemon re-attaches to them.
        _disposed = true;
        _launcher.Dispose();
        foreach (var d in _registry.Snapshot())
        {
            d.Watch?.Dispose();
            d.Child?.Dispose();
        }
    }
}
