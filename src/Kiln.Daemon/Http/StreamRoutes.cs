using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json;
using Kiln.Contracts.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using static Kiln.Daemon.Http.HttpResults;

namespace Kiln.Daemon.Http;

/// <summary>The streaming routes: /v1/events (server-sent lifecycle events) and /v1/domains/{name}/console (the
/// serial console as a WebSocket).</summary>
internal static class StreamRoutes
{
    public static void Map(WebApplication app, DomainService service)
    {
        app.MapGet("/v1/domains/{name}/console", (HttpContext ctx, string name) => Handle(ctx, () => ConsoleAsync(ctx, service, name)));
        app.MapGet("/v1/events", ctx => EventsAsync(ctx, service));
    }

    /// <summary>GET /v1/events: server-sent events, one lifecycle event (JSON) per `data:` line.</summary>
    private static async Task EventsAsync(HttpContext ctx, DomainService sup)
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
    private static async Task ConsoleAsync(HttpContext ctx, DomainService sup, string name)
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
