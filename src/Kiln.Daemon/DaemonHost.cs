using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Kiln.Contracts.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Daemon;

public sealed class DaemonOptions
{
    public string SocketPath { get; set; } = "/run/kiln/kiln.sock";
    public string StateDir { get; set; } = "/var/lib/kiln";
    public string? Tcp { get; set; }
    public string? TlsCert { get; set; }
    public string? TlsKey { get; set; }
    public string? TokenFile { get; set; }

    /// <summary>Keep one VMM process started ahead, so a start does not wait for one (see VmmLauncher).</summary>
    public bool SpareVmm { get; set; } = true;

    /// <summary>How to run `kiln` for a VMM: the program and its leading arguments.</summary>
    public string[] KilnCommand { get; set; } = [];
}

/// <summary>`kiln daemon`: the HTTP/JSON API (docs/api/openapi.json) on a Unix socket (mode 0600) and, when asked,
/// on TCP with TLS and a bearer token.</summary>
public static class DaemonHost
{
    public static async Task<int> RunAsync(DaemonOptions options, CancellationToken stop = default)
    {
        byte[]? token = null;
        X509Certificate2? certificate = null;
        IPEndPoint? tcp = null;
        if (options.Tcp is not null)
        {
            if (options.TlsCert is null || options.TlsKey is null || options.TokenFile is null)
                throw new DaemonException(400, "--tcp needs --tls-cert, --tls-key and --token-file");
            tcp = IPEndPoint.TryParse(options.Tcp, out var ep) ? ep : throw new DaemonException(400, $"--tcp: not HOST:PORT: '{options.Tcp}'");
            token = Encoding.UTF8.GetBytes(File.ReadAllText(options.TokenFile).Trim());
            if (token.Length < 16)
                throw new DaemonException(400, "--token-file: the token must be at least 16 characters");
            certificate = X509Certificate2.CreateFromPemFile(options.TlsCert, options.TlsKey);
        }
        // Starting a VMM blocks a thread for a moment (fork/exec, fsync of the state files); with the pool's default
        // minimum (one thread per core) a storm of starts would starve quick requests like `list` while the pool grows.
        RaisePriority();
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 64), Math.Max(io, 64));
        var store = new DomainStore(options.StateDir);
        using var supervisor = new Supervisor(store, options.KilnCommand, options.SpareVmm);
        if (options.TlsCert is not null && options.TlsKey is not null)
            supervisor.MigrationTls = (Path.GetFullPath(options.TlsCert), Path.GetFullPath(options.TlsKey));
        await supervisor.InitializeAsync();

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, DaemonJsonContext.Default));
        string socketDir = Path.GetDirectoryName(Path.GetFullPath(options.SocketPath))!;
        Directory.CreateDirectory(socketDir);
        if (File.Exists(options.SocketPath))
        {
            if (IsListening(options.SocketPath))
                throw new DaemonException(409, $"another daemon is listening on {options.SocketPath}");
            File.Delete(options.SocketPath);
        }
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(options.SocketPath);
            if (tcp is not null)
                k.Listen(tcp, l => l.UseHttps(certificate!));
            k.Limits.MaxRequestBodySize = 1 << 20;
        });
        var app = builder.Build();
        app.UseWebSockets();
        if (token is not null)
            app.Use(async (ctx, next) =>
            {
                // Unix-socket clients are authorized by the socket's file mode; TCP clients need the token.
                if (ctx.Connection.LocalIpAddress is not null && !Authorized(ctx, token))
                {
                    ctx.Response.Headers.WWWAuthenticate = "Bearer";
                    await Write(ctx, 401, new ApiError { Error = "unauthorized: a valid bearer token is required" }, DaemonJsonContext.Default.ApiError);
                    return;
                }
                await next(ctx);
            });
        MapRoutes(app, supervisor);
        await app.StartAsync(stop);
        File.SetUnixFileMode(options.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Console.Error.WriteLine($"kiln daemon: listening on unix:{options.SocketPath}" + (tcp is null ? "" : $" and https://{tcp}") + $", state in {options.StateDir}");
        await app.WaitForShutdownAsync(stop);
        return 0;
    }

    /// <summary>The management plane before the guests: as root, the daemon runs at nice -10, so `list` answers
    /// promptly even when every core is busy with vCPUs. Linux nice values are per thread and inherited, so every
    /// existing thread is changed; the VMMs it starts are put back to nice 0 (see Supervisor).</summary>
    private static void RaisePriority()
    {
        if (!Kiln.Interop.ProcessCalls.IsRoot)
            return;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            if (int.TryParse(Path.GetFileName(task), out int tid))
                Kiln.Interop.ProcessCalls.SetNice(tid, -10); // per thread: PRIO_PROCESS with a thread id
    }

    private static bool IsListening(string path)
    {
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static bool Authorized(HttpContext ctx, byte[] token)
    {
        string header = ctx.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal))
            return false;
        byte[] given = Encoding.UTF8.GetBytes(header[7..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, token);
    }

    internal static async Task Write<T>(HttpContext ctx, int status, T value, JsonTypeInfo<T> type)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, value, type);
    }

    /// <summary>Runs a handler, turning refusals into JSON errors with their status.</summary>
    internal static async Task Handle(HttpContext ctx, Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (DaemonException e)
        {
            await Write(ctx, e.Status, new ApiError { Error = e.Message, Field = e.Field }, DaemonJsonContext.Default.ApiError);
        }
        catch (DomainFormatException e)
        {
            string message = e.Field is null || e.Message.Contains(e.Field, StringComparison.Ordinal) ? e.Message : $"{e.Field}: {e.Message}";
            await Write(ctx, 400, new ApiError { Error = message, Field = e.Field }, DaemonJsonContext.Default.ApiError);
        }
    }

    internal static Task Message(HttpContext ctx, string message, string? state = null) =>
        Write(ctx, 200, new MessageResponse { Message = message, State = state }, DaemonJsonContext.Default.MessageResponse);

    private static void MapRoutes(WebApplication app, Supervisor sup)
    {
        var json = DaemonJsonContext.Default;
        app.MapGet("/v1/domains", ctx => Handle(ctx, async () =>
        {
            bool all = ctx.Request.Query["all"] is var a && (a == "true" || a == "1");
            var list = sup.Snapshot().Where(d => all || d.State is DomainState.Running or DomainState.Paused)
                .Select(sup.Summary).ToList();
            await Write(ctx, 200, list, json.ListDomainSummary);
        }));
        app.MapPost("/v1/domains", ctx => Handle(ctx, async () =>
        {
            string body = await new StreamReader(ctx.Request.Body, Encoding.UTF8).ReadToEndAsync();
            if (string.IsNullOrWhiteSpace(body))
                throw new DaemonException(400, "the request body is empty (a JSON definition or libvirt domain XML)");
            var definition = DomainCodec.Parse(body);
            var domain = sup.Define(definition);
            await Write(ctx, 201, sup.Info(domain), json.DomainInfo);
        }));
        app.MapGet("/v1/domains/{name}", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, sup.Info(sup.Get(name)), json.DomainInfo)));
        app.MapGet("/v1/domains/{name}/xml", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            string xml = DomainCodec.ToXml(sup.Get(name).Definition);
            ctx.Response.ContentType = "application/xml";
            await ctx.Response.WriteAsync(xml + "\n");
        }));
        app.MapGet("/v1/domains/{name}/definition", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, sup.Get(name).Definition, json.DomainDefinition)));
        app.MapDelete("/v1/domains/{name}", (HttpContext ctx, string name) => Handle(ctx, () =>
        {
            sup.Undefine(name);
            return Message(ctx, $"domain '{name}' has been undefined");
        }));
        app.MapGet("/v1/domains/{name}/state", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, sup.Summary(sup.Get(name)), json.DomainSummary)));
        app.MapGet("/v1/domains/{name}/stats", (HttpContext ctx, string name) => Handle(ctx, async () =>
            await Write(ctx, 200, await sup.StatsAsync(name), json.DomainStats)));
        app.MapPost("/v1/domains/{name}/start", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await sup.StartAsync(name);
            await Message(ctx, $"domain '{name}' started", "running");
        }));
        app.MapPost("/v1/domains/{name}/shutdown", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            double seconds = 60;
            if (ctx.Request.Query["timeout"] is { Count: > 0 } t && !double.TryParse(t[0], System.Globalization.CultureInfo.InvariantCulture, out seconds))
                throw new DaemonException(400, $"timeout is not a number of seconds: '{t[0]}'", "timeout");
            await sup.ShutdownAsync(name, TimeSpan.FromSeconds(seconds));
            await Message(ctx, $"domain '{name}' is shut off", "shut off");
        }));
        app.MapPost("/v1/domains/{name}/destroy", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await sup.DestroyAsync(name);
            await Message(ctx, $"domain '{name}' destroyed", "shut off");
        }));
        app.MapPost("/v1/domains/{name}/reboot", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await sup.RebootAsync(name);
            await Message(ctx, $"domain '{name}' is being rebooted", "running");
        }));
        app.MapPost("/v1/domains/{name}/suspend", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await sup.SuspendAsync(name);
            await Message(ctx, $"domain '{name}' suspended", "paused");
        }));
        app.MapPost("/v1/domains/{name}/resume", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await sup.ResumeAsync(name);
            await Message(ctx, $"domain '{name}' resumed", "running");
        }));
        app.MapPut("/v1/domains/{name}/autostart", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            var request = await ReadJson(ctx, json.AutostartRequest);
            sup.SetAutostart(name, request.Enabled);
            await Message(ctx, request.Enabled ? $"domain '{name}' marked as autostarted" : $"domain '{name}' unmarked as autostarted");
        }));
        app.MapPost("/v1/domains/{name}/disks", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            var request = await ReadJson(ctx, json.AttachDiskRequest);
            await Message(ctx, sup.AttachDisk(name, request));
        }));
        app.MapDelete("/v1/domains/{name}/disks/{target}", (HttpContext ctx, string name, string target) => Handle(ctx, () =>
            Message(ctx, sup.DetachDisk(name, target))));
        app.MapGet("/v1/domains/{name}/console", (HttpContext ctx, string name) => Handle(ctx, () => ConsoleAsync(ctx, sup, name)));
        app.MapGet("/v1/events", ctx => EventsAsync(ctx, sup));
        MigrationRoutes.Map(app, sup, Handle);
        SnapshotRoutes.Map(app, sup);
        app.MapFallback(ctx => Write(ctx, 404, new ApiError { Error = $"no such route: {ctx.Request.Method} {ctx.Request.Path}" }, json.ApiError));
    }

    internal static async Task<T> ReadJson<T>(HttpContext ctx, JsonTypeInfo<T> type) where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(ctx.Request.Body, type)
                ?? throw new DaemonException(400, "the request body is null");
        }
        catch (JsonException e)
        {
            string field = string.IsNullOrEmpty(e.Path) ? "$" : e.Path;
            throw new DaemonException(400, $"malformed JSON at '{field}'", field);
        }
    }

    /// <summary>GET /v1/events: server-sent events, one lifecycle event (JSON) per `data:` line.</summary>
    private static async Task EventsAsync(HttpContext ctx, Supervisor sup)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        var reader = sup.Subscribe(out var unsubscribe);
        try
        {
            await ctx.Response.WriteAsync(": kiln events\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            await foreach (var e in reader.ReadAllAsync(ctx.RequestAborted))
            {
                string line = JsonSerializer.Serialize(e, JsonOneLine.Default.LifecycleEvent);
                await ctx.Response.WriteAsync($"event: {e.Event}\ndata: {line}\n\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            unsubscribe();
        }
    }

    /// <summary>GET /v1/domains/{name}/console as a WebSocket: binary messages both ways, the guest's console bytes
    /// to the client and the client's keystrokes to the guest, through the VMM's control socket.</summary>
    private static async Task ConsoleAsync(HttpContext ctx, Supervisor sup, string name)
    {
        string socketPath = sup.ConsoleSocket(name);
        if (!ctx.WebSockets.IsWebSocketRequest)
            throw new DaemonException(400, "the console is a WebSocket endpoint (Upgrade: websocket)");
        bool history = ctx.Request.Query["history"] == "true";
        using var vmm = ControlClient.Connect(socketPath);
        var stream = new NetworkStream(vmm, ownsSocket: false);
        // Read the one response line byte by byte so no console bytes are swallowed by a reader buffer.
        byte[] request = [.. JsonSerializer.SerializeToUtf8Bytes(new ControlRequest { Command = "console", History = history }, ControlJsonContext.Default.ControlRequest), (byte)'\n'];
        await stream.WriteAsync(request);
        var lineBytes = new List<byte>();
        var one = new byte[1];
        while (await stream.ReadAsync(one) == 1 && one[0] != '\n')
            lineBytes.Add(one[0]);
        var response = JsonSerializer.Deserialize(lineBytes.ToArray(), ControlJsonContext.Default.ControlResponse);
        if (response is not { Ok: true })
            throw new DaemonException(409, $"domain '{name}': console refused: {response?.Error}");
        using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        var toClient = Task.Run(async () =>
        {
            var buffer = new byte[8192];
            try
            {
                int n;
                while ((n = await stream.ReadAsync(buffer, done.Token)) > 0)
                    await ws.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, true, done.Token);
                await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "the domain stopped", CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException or SocketException)
            {
            }
        });
        var toGuest = Task.Run(async () =>
        {
            var buffer = new byte[1024];
            try
            {
                while (true)
                {
                    var r = await ws.ReceiveAsync(buffer, done.Token);
                    if (r.MessageType == WebSocketMessageType.Close)
                        break;
                    await stream.WriteAsync(buffer.AsMemory(0, r.Count), done.Token);
                }
            }
            catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException or SocketException)
            {
            }
        });
        await Task.WhenAny(toClient, toGuest);
        done.Cancel();
        vmm.Shutdown(SocketShutdown.Both);
        await Task.WhenAll(toClient, toGuest);
        if (ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            try
            {
                await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "detached", CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or IOException)
            {
            }
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(LifecycleEvent))]
[System.Text.Json.Serialization.JsonSerializable(typeof(DomainSummary))]
[System.Text.Json.Serialization.JsonSerializable(typeof(List<DomainSummary>))]
internal sealed partial class JsonOneLine : System.Text.Json.Serialization.JsonSerializerContext;
