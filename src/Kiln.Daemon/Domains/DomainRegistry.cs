namespace Kiln.Daemon.Domains;

/// <summary>The defined domains: their definitions (persisted through the store) and the lock-free index readers use.
/// Lookups by name, UUID or running VMM id; define (a new name, or an update that keeps the UUID), undefine, and the
/// changes to a definition (autostart, disks).</summary>
public sealed class DomainRegistry(DomainStore store, EventHub events)
{
    private readonly DomainStore _store = store;
    private readonly EventHub _events = events;
    private readonly object _lock = new();
    private readonly Dictionary<string, ManagedDomain> _domains = new(StringComparer.Ordinal);

    // What readers see: a copy of _domains made after each change, so list and lookups never wait for _lock
    // (held across a definition's fsync) and take no lock at all.
    private volatile DomainIndex _index = DomainIndex.Empty;

    private sealed record DomainIndex(ManagedDomain[] Sorted, Dictionary<string, ManagedDomain> ByName)
    {
        public static readonly DomainIndex Empty = new([], new Dictionary<string, ManagedDomain>(StringComparer.Ordinal));
    }

    /// <summary>Publishes a new <see cref="_index"/>; called under _lock after every change to _domains.</summary>
    private void Reindex() =>
        _index = new DomainIndex([.. _domains.Values.OrderBy(d => d.Definition.Name, StringComparer.Ordinal)],
            new Dictionary<string, ManagedDomain>(_domains, StringComparer.Ordinal));

    /// <summary>Adds a definition read from the store at start-up.</summary>
    public ManagedDomain Load(DomainDefinition definition)
    {
        var domain = new ManagedDomain(definition);
        lock (_lock)
        {
            _domains[definition.Name] = domain;
            Reindex();
        }
        return domain;
    }

    public bool Contains(string name) => _index.ByName.ContainsKey(name);

    public ManagedDomain? FindByUuid(string uuid) =>
        Guid.TryParse(uuid, out var id) ? _index.Sorted.FirstOrDefault(d => Guid.TryParse(d.Definition.Uuid, out var u) && u == id) : null;

    /// <summary>The running domain whose VMM has this process id (virsh's domain id).</summary>
    public ManagedDomain? FindByPid(int pid) => _index.Sorted.FirstOrDefault(d => d.Runtime?.Pid == pid);

    public IReadOnlyList<ManagedDomain> Snapshot() => _index.Sorted;

    public ManagedDomain Get(string name) =>
        _index.ByName.TryGetValue(name, out var d) ? d : throw new DaemonException(404, $"domain '{name}' not found");

    public ManagedDomain Define(DomainDefinition definition)
    {
        ManagedDomain domain;
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
                domain = new ManagedDomain(definition);
                _domains[definition.Name] = domain;
                Reindex();
            }
            _store.Save(definition);
        }
        _events.Publish(definition.Name, "defined");
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
        _events.Publish(name, "undefined");
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

    /// <summary>Drops a definition made only for an incoming migration that failed (no event: it was never the
    /// user's). The index is republished too, so list no longer shows it.</summary>
    public void Forget(ManagedDomain domain)
    {
        lock (_lock)
        {
            _domains.Remove(domain.Definition.Name);
            Reindex();
            domain.Removed = true;
        }
        _store.Delete(domain.Definition.Name);
    }
}
