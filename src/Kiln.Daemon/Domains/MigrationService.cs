using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Kiln.Contracts.Control;

using Microsoft.Extensions.Logging;

namespace Kiln.Daemon.Domains;

/// <summary>Live migration between daemons. The source daemon asks the destination daemon (its TCP API, TLS and
/// bearer token) to prepare an incoming VMM for the domain's definition; that daemon launches a VMM whose spec has an incoming source
/// on a free port with a fresh one-time token and answers with both. The source daemon then hands port and token
/// to its own VMM (control verb <c>migrate</c>) and relays the VMM's progress events. Afterwards the domain runs on
/// the destination and is shut off, definition kept, on the source (like virsh without --undefinesource). If the
/// incoming VMM ends before the guest ran there, the destination forgets a definition it created for it.</summary>
public sealed class MigrationService
{
    private readonly DomainRegistry _registry;
    private readonly DomainRunner _runner;
    private readonly DomainControl _control;
    private readonly EventHub _events;
    private readonly ILogger _log;

    public MigrationService(DomainRegistry registry, DomainRunner runner, DomainControl control, EventHub events, ILogger log)
    {
        _registry = registry;
        _runner = runner;
        _control = control;
        _events = events;
        _log = log;
        runner.IncomingCompleted = IncomingCompleted;
        runner.IncomingEnded = IncomingEnded;
    }

    /// <summary>Domains waiting for an incoming migration: name, and whether the definition was created for it.</summary>
    private readonly Dictionary<string, bool> _incoming = new(StringComparer.Ordinal);

    /// <summary>Copy-storage: per incoming domain, the disk images that did not exist before its VMM started (the VMM
    /// creates them; they go again if the VMM ends before the guest ran here, even if it was killed).</summary>
    private readonly Dictionary<string, List<string>> _incomingDisks = new(StringComparer.Ordinal);

    /// <summary>The daemon's TLS certificate and key (PEM files), which incoming VMMs serve their stream with.</summary>
    public (string Cert, string Key)? MigrationTls { get; set; }

    public async Task<IncomingMigrationResponse> PrepareIncomingAsync(IncomingMigrationRequest request)
    {
        var definition = DomainCodec.FromJson(request.Definition);
        bool existed;
        existed = _registry.Contains(definition.Name);
        if (existed && _registry.Get(definition.Name).State is DomainState.Running or DomainState.Paused)
            throw new DaemonException(409, $"domain '{definition.Name}' is already running on the destination");
        var absent = definition.Disks.Where(d => !d.ReadOnly && !File.Exists(d.Path)).Select(d => d.Path).ToList();
        if (!request.CopyStorage && definition.Disks.FirstOrDefault(d => !File.Exists(d.Path)) is { } missing)
            throw new DaemonException(409, $"disk {missing.Path} does not exist on the destination (without --copy-storage the hosts must share storage)");
        if (request.CopyStorage && definition.Disks.FirstOrDefault(d => d.ReadOnly && !File.Exists(d.Path)) is { } readOnly)
            throw new DaemonException(409, $"read-only disk {readOnly.Path} does not exist on the destination (--copy-storage copies writable disks only)");
        var domain = _registry.Define(definition);
        string name = definition.Name;
        int port = FreePort();
        string token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        var source = new Contracts.Spec.StartSource
        {
            Incoming = new Contracts.Spec.IncomingSource
            {
                Listen = $"tcp:0.0.0.0:{port}", TimeoutSeconds = 60, TlsCert = MigrationTls?.Cert, TlsKey = MigrationTls?.Key,
            },
        };
        await domain.Gate.WaitAsync();
        try
        {
            if (domain.State is DomainState.Running or DomainState.Paused)
                throw new DaemonException(409, $"domain '{name}' is already running on the destination");
            lock (_incoming)
            {
                _incoming[name] = !existed;
                _incomingDisks[name] = request.CopyStorage ? absent : [];
            }
            try
            {
                await _runner.LaunchAsync(domain, source, "incoming migration", token);
            }
            catch
            {
                lock (_incoming)
                {
                    _incoming.Remove(name);
                    _incomingDisks.Remove(name);
                }
                if (!existed)
                    _registry.Forget(domain);
                throw;
            }
            domain.State = DomainState.Paused;
            domain.Reason = "incoming migration";
        }
        finally
        {
            domain.Gate.Release();
        }
        _events.Publish(name, "migration-incoming");
        return new IncomingMigrationResponse { Name = name, Port = port, Token = token, Tls = MigrationTls is not null };
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Best effort (the VMM normally removed it already).</summary>
    private void RemoveCreatedDisk(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning($"cannot remove {path} after a failed incoming migration: {e.Message}");
        }
    }

    /// <summary>The incoming VMM's guest runs: the domain is an ordinary running domain from now on.</summary>
    private void IncomingCompleted(ManagedDomain domain)
    {
        lock (_incoming)
        {
            _incoming.Remove(domain.Definition.Name);
            _incomingDisks.Remove(domain.Definition.Name);
        }
        domain.State = DomainState.Running;
        domain.Reason = "migrated in";
        _events.Publish(domain.Definition.Name, "migrated-in");
    }

    /// <summary>Called when a VMM ends: true (and cleaned up) when it was an incoming migration that never ran the
    /// guest, so nothing is left behind.</summary>
    private bool IncomingEnded(ManagedDomain domain, string? why)
    {
        string name = domain.Definition.Name;
        bool created;
        List<string>? disks;
        lock (_incoming)
        {
            _incomingDisks.Remove(name, out disks);
            if (!_incoming.Remove(name, out created))
                return false;
        }
        foreach (string path in disks ?? [])
            RemoveCreatedDisk(path);
        _runner.MarkEnded(domain, DomainState.ShutOff, $"incoming migration failed: {why}");
        if (created)
            _registry.Forget(domain);
        _events.Publish(name, "migration-failed", why);
        return true;
    }

    /// <summary>Migrates a running domain; <paramref name="emit"/> gets the VMM's progress events, ending with
    /// <c>migrated</c> or <c>migration-failed</c>.</summary>
    public async Task MigrateAsync(string name, MigrateRequest request, Func<ControlEvent, Task> emit, CancellationToken cancel)
    {
        var domain = _registry.Get(name);
        var rt = domain.Runtime;
        if (rt is null || domain.State != DomainState.Running)
            throw new DaemonException(409, $"domain '{name}' is not running" + (domain.State == DomainState.Paused ? " (resume it first)" : ""));
        if (!request.Destination.StartsWith("tcp://", StringComparison.Ordinal)
            || !Uri.TryCreate("https://" + request.Destination["tcp://".Length..].TrimEnd('/') + "/", UriKind.Absolute, out var api))
            throw new DaemonException(400, $"destination '{request.Destination}' is not tcp://HOST:PORT", "destination");
        if (request.CopyStorage && !domain.Definition.Disks.Any(d => !d.ReadOnly))
            throw new DaemonException(400, $"domain '{name}' has no writable disk to copy (--copy-storage)");
        var incoming = await AskDestinationAsync(api, request, DomainCodec.ToJson(domain.Definition), cancel);
        string host = api.Host.Contains(':') ? $"[{api.Host}]" : api.Host;

        using var watch = ControlClient.Connect(rt.Socket);
        await using var watchStream = new NetworkStream(watch, ownsSocket: false);
        var reader = new StreamReader(watchStream, Encoding.UTF8);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var ok = await ControlClient.SendAsync(watchStream, reader, new ControlRequest { Command = "watch" }, timeout.Token);
            if (!ok.Ok)
                throw new DaemonException(409, $"domain '{name}': {ok.Error}");
        }
        using (var control = ControlClient.Connect(rt.Socket))
        {
            await using var controlStream = new NetworkStream(control, ownsSocket: false);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var response = await ControlClient.SendAsync(controlStream, new StreamReader(controlStream, Encoding.UTF8), new ControlRequest
            {
                Command = "migrate", Uri = $"tcp:{host}:{incoming.Port}", Token = incoming.Token, Tls = incoming.Tls,
                MaxDowntimeMs = request.MaxDowntimeMs, MaxBandwidthMBps = request.MaxBandwidthMBps, CopyStorage = request.CopyStorage,
            }, timeout.Token);
            if (!response.Ok)
                throw new DaemonException(409, $"domain '{name}': {response.Error}");
        }
        _events.Publish(name, "migration-started", request.Destination);
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            var e = JsonSerializer.Deserialize(line, ControlJsonContext.Default.ControlEvent);
            if (e is null || e.Event is not ("migration" or "migrated" or "migration-failed"))
                continue;
            await emit(e);
            if (e.Event == "migrated")
            {
                domain.Reason = $"migrated to {request.Destination}";
                _events.Publish(name, "migrated", request.Destination);
                return;
            }
            if (e.Event == "migration-failed")
            {
                _events.Publish(name, "migration-failed", e.Message);
                return;
            }
        }
        await emit(new ControlEvent { Event = "migration-failed", Message = "the VMM ended during the migration" });
    }

    private static async Task<IncomingMigrationResponse> AskDestinationAsync(Uri api, MigrateRequest request, string definition,
        CancellationToken cancel)
    {
        using var handler = new SocketsHttpHandler();
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, cert, _, errors) => ValidateDestination(cert, errors, request),
        };
        using var http = new HttpClient(handler) { BaseAddress = api, Timeout = TimeSpan.FromSeconds(90) };
        if (request.DestinationToken is { Length: > 0 } token)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        string body = JsonSerializer.Serialize(new IncomingMigrationRequest { Definition = definition, CopyStorage = request.CopyStorage },
            DaemonJsonContext.Default.IncomingMigrationRequest);
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsync("v1/migrations/incoming", new StringContent(body, Encoding.UTF8, "application/json"), cancel);
        }
        catch (HttpRequestException e)
        {
            throw new DaemonException(502, $"cannot reach the destination daemon at {api.Authority}: {e.Message}");
        }
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync(cancel);
            if (!response.IsSuccessStatusCode)
            {
                string message = text;
                try
                {
                    message = JsonSerializer.Deserialize(text, DaemonJsonContext.Default.ApiError)?.Error ?? text;
                }
                catch (JsonException)
                {
                }
                throw new DaemonException(502, $"the destination daemon refused the migration: {message}");
            }
            try
            {
                return JsonSerializer.Deserialize(text, DaemonJsonContext.Default.IncomingMigrationResponse)
                       ?? throw new DaemonException(502, "the destination daemon sent an empty answer");
            }
            catch (JsonException e)
            {
                throw new DaemonException(502, $"the destination daemon sent malformed JSON: {e.Message}");
            }
        }
    }

    private static bool ValidateDestination(X509Certificate? cert, SslPolicyErrors errors, MigrateRequest request)
    {
        if (errors == SslPolicyErrors.None || request.Insecure)
            return true;
        if (cert is null || request.DestinationCa is not { Length: > 0 } caPem)
            return false;
        using var ca = X509Certificate2.CreateFromPem(caPem);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(cert);
        return chain.Build(leaf);
    }

    public async Task AbortMigrationAsync(string name) => await _control.ControlAsync(_registry.Get(name), "migrate-abort");
}
