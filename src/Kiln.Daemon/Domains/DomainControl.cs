using System.Net.Sockets;
using Kiln.Contracts.Control;

namespace Kiln.Daemon.Domains;

/// <summary>What the daemon asks of a running domain's VMM over its control socket: pause, resume, reset, the ACPI
/// power button and Ctrl-Alt-Del (a graceful shutdown), stop (destroy, SIGKILL as the last resort), statistics, and
/// where its console is.</summary>
public sealed class DomainControl(DomainRegistry registry, EventHub events)
{
    private readonly DomainRegistry _registry = registry;
    private readonly EventHub _events = events;

    public async Task<ControlResponse> ControlAsync(ManagedDomain domain, string command)
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
        var domain = _registry.Get(name);
        await ControlAsync(domain, "pause");
        domain.State = DomainState.Paused;
        domain.Reason = "suspended";
    }

    public async Task ResumeAsync(string name)
    {
        var domain = _registry.Get(name);
        await ControlAsync(domain, "resume");
        domain.State = DomainState.Running;
        domain.Reason = "unpaused";
    }

    public async Task RebootAsync(string name) => await ControlAsync(_registry.Get(name), "reset");

    /// <summary>How long a guest that listens for the ACPI power button gets to act on it before it also gets
    /// Ctrl-Alt-Del (a guest may enable the button without acting on it, like a busybox system).</summary>
    private static readonly TimeSpan PowerButtonGrace = TimeSpan.FromSeconds(5);

    /// <summary>Graceful: the ACPI power button if the guest listens for it, Ctrl-Alt-Del through the i8042 if it
    /// does not (or has not powered off after <see cref="PowerButtonGrace"/>), then waits for the guest to power
    /// off.</summary>
    public async Task ShutdownAsync(string name, TimeSpan timeout)
    {
        var domain = _registry.Get(name);
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
        _events.Publish(name, "shutdown-requested", pressed ? "ACPI power button" : "Ctrl-Alt-Del");
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
        var domain = _registry.Get(name);
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
            if (ProcessStats.ProcessStartTicks(rt.Pid) == rt.StartTicks)
                Kiln.Interop.ProcessCalls.Signal(rt.Pid, Kiln.Interop.ProcessCalls.SIGKILL);
            await Task.WhenAny(ended, Task.Delay(5000));
        }
    }

    public async Task<DomainStats> StatsAsync(string name)
    {
        var domain = _registry.Get(name);
        var stats = new DomainStats { Name = name, State = domain.State.Name() };
        if (domain.Runtime is { } rt && domain.State is DomainState.Running or DomainState.Paused)
        {
            stats.Vmm = await ControlAsync(domain, "stats");
            var (cpu, rss) = ProcessStats.Usage(rt.Pid);
            stats.CpuTimeSeconds = cpu;
            stats.RssBytes = rss;
        }
        return stats;
    }

    public string ConsoleSocket(string name)
    {
        var domain = _registry.Get(name);
        return domain.Runtime is { } rt && domain.State is DomainState.Running or DomainState.Paused
            ? rt.Socket
            : throw new DaemonException(409, $"domain '{name}' is not running");
    }
}
