using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kiln.Contracts.Control;
using Kiln.Contracts.Snapshot;
using Kiln.Contracts.Spec;

namespace Kiln.Daemon.Domains;

/// <summary>Snapshots of domains (virsh save/restore and snapshot-create/list/revert/delete). The VMM writes the
/// file (control verbs save/snapshot); a restore launches a VMM whose spec names the file as its source. The domain's
/// definition is kept throughout: a saved domain is shut off, a restored one running.</summary>
public sealed partial class SnapshotService(string root, DomainRegistry registry, DomainRunner runner, DomainControl control, EventHub events)
{
    private readonly string _root = root;
    private readonly DomainRegistry _registry = registry;
    private readonly DomainRunner _runner = runner;
    private readonly DomainControl _control = control;
    private readonly EventHub _events = events;

    // Writing a large guest's RAM can take a while; the VMM answers when the file is complete.
    private static readonly TimeSpan SaveTimeout = TimeSpan.FromMinutes(10);

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex SnapshotNamePattern();

    public string SnapshotDir(string domain) => Path.Combine(_root, "snapshots", domain);

    /// <summary>virsh save: writes the running domain to <paramref name="file"/>, then its VMM stops.</summary>
    public async Task SaveAsync(string name, string file)
    {
        var domain = _registry.Get(name);
        file = CheckedPath(file);
        await domain.Gate.WaitAsync();
        try
        {
            var ended = domain.Ended.Task;
            await SnapshotControlAsync(domain, "save", file);
            if (await Task.WhenAny(ended, Task.Delay(TimeSpan.FromSeconds(30))) != ended)
                throw new DaemonException(500, $"domain '{name}' was saved to {file} but its VMM did not stop");
        }
        finally
        {
            domain.Gate.Release();
        }
        _events.Publish(name, "saved", file);
    }

    /// <summary>virsh restore: the domain named in the snapshot (which must be defined and shut off) resumes from it.</summary>
    public async Task<string> RestoreAsync(string file)
    {
        file = CheckedPath(file);
        string name;
        name = OpenSnapshot(file).Info.Name ?? throw new DaemonException(400, $"snapshot {file} names no domain (it was not saved by the daemon)");
        var domain = _registry.Get(name);
        await domain.Gate.WaitAsync();
        try
        {
            await RestoreLockedAsync(domain, file);
        }
        finally
        {
            domain.Gate.Release();
        }
        return name;
    }

    private async Task RestoreLockedAsync(ManagedDomain domain, string file)
    {
        string name = domain.Definition.Name;
        if (domain.Removed)
            throw new DaemonException(404, $"domain '{name}' not found");
        if (domain.State is DomainState.Running or DomainState.Paused)
            throw new DaemonException(409, $"domain '{name}' is running; destroy it first");
        await _runner.LaunchAsync(domain, new StartSource { Restore = new RestoreSource { File = file } }, reason: "restored");
        _events.Publish(name, "restored", file);
    }

    /// <summary>A snapshot of a running domain kept by the daemon; the guest is paused only while it is written.</summary>
    public async Task<SnapshotEntry> CreateSnapshotAsync(string name, string? snapshotName)
    {
        var domain = _registry.Get(name);
        snapshotName ??= DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff", CultureInfo.InvariantCulture);
        CheckSnapshotName(snapshotName);
        string dir = SnapshotDir(name);
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, snapshotName + ".ksnap");
        if (File.Exists(file))
            throw new DaemonException(409, $"domain '{name}' already has a snapshot '{snapshotName}'", "name");
        var response = await SnapshotControlAsync(domain, "snapshot", file);
        _events.Publish(name, "snapshot", snapshotName);
        var entry = Entry(name, file);
        entry.PausedMs = response.PausedMs;
        return entry;
    }

    public List<SnapshotEntry> ListSnapshots(string name)
    {
        _registry.Get(name);
        string dir = SnapshotDir(name);
        if (!Directory.Exists(dir))
            return [];
        return [.. Directory.EnumerateFiles(dir, "*.ksnap").Select(f => Entry(name, f)).OrderBy(e => e.CreatedAt)];
    }

    /// <summary>Back to a kept snapshot: a running domain is destroyed first, then resumes from the snapshot.</summary>
    public async Task RevertSnapshotAsync(string name, string snapshotName)
    {
        string file = SnapshotFile(name, snapshotName);
        OpenSnapshot(file);
        var domain = _registry.Get(name);
        if (domain.State is DomainState.Running or DomainState.Paused)
            await _control.DestroyAsync(name);
        await domain.Gate.WaitAsync();
        try
        {
            await RestoreLockedAsync(domain, file);
        }
        finally
        {
            domain.Gate.Release();
        }
    }

    public void DeleteSnapshot(string name, string snapshotName) => File.Delete(SnapshotFile(name, snapshotName));

    private string SnapshotFile(string name, string snapshotName)
    {
        _registry.Get(name);
        CheckSnapshotName(snapshotName);
        string file = Path.Combine(SnapshotDir(name), snapshotName + ".ksnap");
        if (!File.Exists(file))
            throw new DaemonException(404, $"domain '{name}' has no snapshot '{snapshotName}'", "snapshot");
        return file;
    }

    private static void CheckSnapshotName(string snapshotName)
    {
        if (!SnapshotNamePattern().IsMatch(snapshotName))
            throw new DaemonException(400, $"bad snapshot name '{snapshotName}' (letters, digits, '.', '_', '-'; up to 64)", "name");
    }

    private static string CheckedPath(string file)
    {
        if (string.IsNullOrWhiteSpace(file) || !Path.IsPathFullyQualified(file))
            throw new DaemonException(400, $"the snapshot file must be an absolute path: '{file}'", "file");
        return Path.GetFullPath(file);
    }

    private static SnapshotHeader OpenSnapshot(string file)
    {
        try
        {
            return SnapshotHeader.ReadFile(file);
        }
        catch (SnapshotException e)
        {
            throw new DaemonException(400, e.Message, "file");
        }
    }

    private static SnapshotEntry Entry(string domain, string file)
    {
        var info = new FileInfo(file);
        return new SnapshotEntry
        {
            Name = Path.GetFileNameWithoutExtension(file), Domain = domain, File = file,
            CreatedAt = info.LastWriteTimeUtc, SizeBytes = info.Length,
        };
    }

    private async Task<ControlResponse> SnapshotControlAsync(ManagedDomain domain, string command, string file)
    {
        var rt = domain.Runtime;
        string name = domain.Definition.Name;
        if (rt is null || domain.State is not (DomainState.Running or DomainState.Paused))
            throw new DaemonException(409, $"domain '{name}' is not running");
        ControlResponse response;
        try
        {
            using var socket = ControlClient.Connect(rt.Socket);
            using var cts = new CancellationTokenSource(SaveTimeout);
            await using var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
            var reader = new StreamReader(stream, Encoding.UTF8);
            response = await ControlClient.SendAsync(stream, reader, new ControlRequest { Command = command, File = file }, cts.Token);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or OperationCanceledException)
        {
            throw new DaemonException(409, $"domain '{name}': the VMM does not answer ({e.Message})");
        }
        if (!response.Ok)
            throw new DaemonException(409, $"domain '{name}': {response.Error}");
        return response;
    }
}
