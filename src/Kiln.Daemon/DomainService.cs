using System.Threading.Channels;
using Kiln.Contracts.Control;
using Kiln.Daemon.Domains;
using Microsoft.Extensions.Logging;

namespace Kiln.Daemon;

/// <summary>The one entry point for the daemon's front ends (the HTTP/JSON API today, the libvirt RPC protocol
/// next): every operation on domains goes through here, so both see the same domains, states, checks and events.
/// It owns the collaborators that do the work: the <see cref="DomainRegistry"/> (definitions), the
/// <see cref="DomainRunner"/> (VMM launch, watch, re-attach), <see cref="DomainControl"/> (lifecycle requests to a
/// running VMM), the <see cref="EventHub"/>, and the <see cref="SnapshotService"/> and
/// <see cref="MigrationService"/>. Failures are <see cref="DaemonException"/>s (with an HTTP-like status) or
/// <see cref="DomainFormatException"/>s (a bad definition, naming the field).</summary>
public sealed class DomainService : IDisposable
{
    private readonly DomainRegistry _registry;
    private readonly DomainRunner _runner;
    private readonly DomainControl _control;
    private readonly EventHub _events = new();
    private readonly SnapshotService _snapshots;
    private readonly MigrationService _migrations;

    /// <param name="kilnCommand">The program and leading arguments that run the `kiln` CLI (e.g. dotnet kiln.dll).</param>
    /// <param name="spareVmm">Keep one VMM process started ahead (see <see cref="VmmLauncher"/>).</param>
    public DomainService(DomainStore store, string[] kilnCommand, bool spareVmm, ILogger log)
    {
        _registry = new DomainRegistry(store, _events);
        _runner = new DomainRunner(store, _registry, _events, kilnCommand, spareVmm, log);
        _control = new DomainControl(_registry, _events);
        _snapshots = new SnapshotService(store.Root, _registry, _runner, _control, _events);
        _migrations = new MigrationService(_registry, _runner, _control, _events, log);
    }

    /// <summary>The daemon's TLS certificate and key (PEM files), which incoming VMMs serve their stream with.</summary>
    public (string Cert, string Key)? MigrationTls
    {
        get => _migrations.MigrationTls;
        set => _migrations.MigrationTls = value;
    }

    /// <summary>Loads the definitions, re-attaches to VMMs that survived a daemon restart, marks the dead ones
    /// crashed, then starts autostart domains.</summary>
    public Task InitializeAsync() => _runner.InitializeAsync();

    // ---- lookups and views ----

    /// <summary>Every defined domain, by name.</summary>
    public IReadOnlyList<ManagedDomain> List() => _registry.Snapshot();

    /// <summary>By name; 404 when there is none.</summary>
    public ManagedDomain Get(string name) => _registry.Get(name);

    public ManagedDomain GetByUuid(string uuid) =>
        _registry.FindByUuid(uuid) ?? throw new DaemonException(404, $"no domain with uuid '{uuid}'");

    /// <summary>By running id (the VMM's pid, as `kiln list` shows it).</summary>
    public ManagedDomain GetById(int id) =>
        _registry.FindByPid(id) ?? throw new DaemonException(404, $"no running domain with id {id}");

    public DomainSummary Summary(ManagedDomain d) => new()
    {
        Name = d.Definition.Name, Uuid = d.Definition.Uuid, State = d.State.Name(), Reason = d.Reason,
        Pid = d.Runtime?.Pid, Autostart = d.Definition.Autostart,
    };

    public DomainInfo Info(ManagedDomain d) => new()
    {
        Name = d.Definition.Name, Uuid = d.Definition.Uuid, State = d.State.Name(), Reason = d.Reason, Pid = d.Runtime?.Pid,
        Vcpus = d.Definition.Vcpus, MemoryMiB = d.Definition.MemoryMiB, Autostart = d.Definition.Autostart,
        UptimeSeconds = d.Runtime is { } rt ? (DateTimeOffset.UtcNow - rt.StartedAt).TotalSeconds : null,
        Definition = d.Definition,
    };

    /// <summary>The definition as libvirt domain XML (virsh dumpxml).</summary>
    public string DumpXml(string name) => DomainCodec.ToXml(Get(name).Definition);

    /// <summary>The definition as Kiln JSON.</summary>
    public DomainDefinition Definition(string name) => Get(name).Definition;

    public Task<DomainStats> StatsAsync(string name) => _control.StatsAsync(name);

    // ---- definitions ----

    /// <summary>Defines (or updates) a domain from Kiln JSON or libvirt XML text.</summary>
    public ManagedDomain Define(string text) => Define(DomainCodec.Parse(text));

    public ManagedDomain Define(DomainDefinition definition) => _registry.Define(definition);

    public void Undefine(string name) => _registry.Undefine(name);

    public void SetAutostart(string name, bool enabled) => _registry.SetAutostart(name, enabled);

    public string AttachDisk(string name, AttachDiskRequest request) => _registry.AttachDisk(name, request);

    public string DetachDisk(string name, string target) => _registry.DetachDisk(name, target);

    // ---- lifecycle ----

    public Task StartAsync(string name) => _runner.StartAsync(name);

    /// <summary>Graceful: the ACPI power button, Ctrl-Alt-Del after a grace period, then waits for power-off.</summary>
    public Task ShutdownAsync(string name, TimeSpan timeout) => _control.ShutdownAsync(name, timeout);

    public Task DestroyAsync(string name) => _control.DestroyAsync(name);

    public Task RebootAsync(string name) => _control.RebootAsync(name);

    public Task SuspendAsync(string name) => _control.SuspendAsync(name);

    public Task ResumeAsync(string name) => _control.ResumeAsync(name);

    /// <summary>The running domain's control socket, whose <c>console</c> command is its serial console.</summary>
    public string ConsoleSocket(string name) => _control.ConsoleSocket(name);

    // ---- events ----

    public ChannelReader<LifecycleEvent> Subscribe(out Action unsubscribe) => _events.Subscribe(out unsubscribe);

    // ---- snapshots ----

    public Task SaveAsync(string name, string file) => _snapshots.SaveAsync(name, file);

    /// <summary>Resumes the domain saved in <paramref name="file"/>; returns its name.</summary>
    public Task<string> RestoreAsync(string file) => _snapshots.RestoreAsync(file);

    public Task<SnapshotEntry> CreateSnapshotAsync(string name, string? snapshotName) => _snapshots.CreateSnapshotAsync(name, snapshotName);

    public List<SnapshotEntry> ListSnapshots(string name) => _snapshots.ListSnapshots(name);

    public Task RevertSnapshotAsync(string name, string snapshotName) => _snapshots.RevertSnapshotAsync(name, snapshotName);

    public void DeleteSnapshot(string name, string snapshotName) => _snapshots.DeleteSnapshot(name, snapshotName);

    // ---- migration ----

    /// <summary>Destination side: starts a VMM waiting for the domain's stream; answers its port and token.</summary>
    public Task<IncomingMigrationResponse> PrepareIncomingAsync(IncomingMigrationRequest request) => _migrations.PrepareIncomingAsync(request);

    /// <summary>Source side: migrates a running domain; <paramref name="emit"/> gets the progress events.</summary>
    public Task MigrateAsync(string name, MigrateRequest request, Func<ControlEvent, Task> emit, CancellationToken cancel) =>
        _migrations.MigrateAsync(name, request, emit, cancel);

    public Task AbortMigrationAsync(string name) => _migrations.AbortMigrationAsync(name);

    public void Dispose() => _runner.Dispose();
}
