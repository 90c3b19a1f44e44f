using System.Text.Json;
using Kiln.Contracts.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Kiln.Daemon.Http;

/// <summary>The migration routes: POST /v1/migrations/incoming (daemon to daemon), POST
/// /v1/domains/{name}/migrate (a stream of JSON progress lines) and POST /v1/domains/{name}/migrate-abort.</summary>
internal static class MigrationRoutes
{
    public static void Map(WebApplication app, DomainService sup)
    {
        var json = DaemonJsonContext.Default;
        app.MapPost("/v1/migrations/incoming", ctx => HttpResults.Handle(ctx, async () =>
        {
            var request = await HttpResults.ReadJson(ctx, json.IncomingMigrationRequest);
            var response = await sup.PrepareIncomingAsync(request);
            ctx.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(ctx.Response.Body, response, json.IncomingMigrationResponse);
        }));
        app.MapPost("/v1/domains/{name}/migrate", (HttpContext ctx, string name) => HttpResults.Handle(ctx, async () =>
        {
            var request = await HttpResults.ReadJson(ctx, json.MigrateRequest);
            bool started = false;
            await sup.MigrateAsync(name, request, async e =>
            {
                if (!started)
                {
                    ctx.Response.ContentType = "application/x-ndjson";
                    started = true;
                }
                byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(e, ControlJsonContext.Default.ControlEvent), (byte)'\n'];
                await ctx.Response.Body.WriteAsync(line, ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }, ctx.RequestAborted);
        }));
        app.MapPost("/v1/domains/{name}/migrate-abort", (HttpContext ctx, string name) => HttpResults.Handle(ctx, async () =>
        {
            await sup.AbortMigrationAsync(name);
            ctx.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(ctx.Response.Body, new MessageResponse { Message = $"migration of {name} aborted" },
                json.MessageResponse);
        }));
    }
}
