using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Kiln.Daemon.Http;
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

    /// <summary>Debug messages in the daemon's log.</summary>
    public bool Debug { get; set; }

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
        var builder = WebApplication.CreateSlimBuilder();
        // journald reads the <N> priority prefix of each line (sd-daemon(3)); --debug lowers the daemon's own level.
        builder.Logging.ClearProviders();
        builder.Logging.AddSystemdConsole(o => o.UseUtcTimestamp = true);
        builder.Logging.SetMinimumLevel(options.Debug ? LogLevel.Debug : LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
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
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("kiln.daemon");
        var store = new DomainStore(options.StateDir, log);
        using var service = new DomainService(store, options.KilnCommand, options.SpareVmm, log);
        if (options.TlsCert is not null && options.TlsKey is not null)
            service.MigrationTls = (Path.GetFullPath(options.TlsCert), Path.GetFullPath(options.TlsKey));
        await service.InitializeAsync();
        app.UseWebSockets();
        if (token is not null)
            app.Use(async (ctx, next) =>
            {
                // Unix-socket clients are authorized by the socket's file mode; TCP clients need the token.
                if (ctx.Connection.LocalIpAddress is not null && !Authorized(ctx, token))
                {
                    ctx.Response.Headers.WWWAuthenticate = "Bearer";
                    await HttpResults.Write(ctx, 401, new ApiError { Error = "unauthorized: a valid bearer token is required" }, DaemonJsonContext.Default.ApiError);
                    return;
                }
                await next(ctx);
            });
        DomainRoutes.Map(app, service);
        LifecycleRoutes.Map(app, service);
        StreamRoutes.Map(app, service);
        MigrationRoutes.Map(app, service);
        SnapshotRoutes.Map(app, service);
        app.MapFallback(ctx => HttpResults.Write(ctx, 404, new ApiError { Error = $"no such route: {ctx.Request.Method} {ctx.Request.Path}" },
            DaemonJsonContext.Default.ApiError));
        await app.StartAsync(stop);
        File.SetUnixFileMode(options.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        log.LogInformation("listening on unix:{Socket}{Tcp}, state in {StateDir}", options.SocketPath,
            tcp is null ? "" : $" and https://{tcp}", options.StateDir);
        await app.WaitForShutdownAsync(stop);
        return 0;
    }

    /// <summary>The management plane before the guests: as root, the daemon runs at nice -10, so `list` answers
    /// promptly even when every core is busy with vCPUs. Linux nice values are per thread and inherited, so every
    /// existing thread is changed; the VMMs it starts are put back to nice 0 (see VmmLauncher).</summary>
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
}
