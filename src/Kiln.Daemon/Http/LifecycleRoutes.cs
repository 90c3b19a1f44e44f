using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using static Kiln.Daemon.Http.HttpResults;

namespace Kiln.Daemon.Http;

/// <summary>/v1/domains/{name}/start|shutdown|destroy|reboot|suspend|resume.</summary>
internal static class LifecycleRoutes
{
    public static void Map(WebApplication app, DomainService service)
    {
        var json = DaemonJsonContext.Default;
        app.MapPost("/v1/domains/{name}/start", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await service.StartAsync(name);
            await Message(ctx, $"domain '{name}' started", "running");
        }));
        app.MapPost("/v1/domains/{name}/shutdown", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            double seconds = 60;
            if (ctx.Request.Query["timeout"] is { Count: > 0 } t && !double.TryParse(t[0], System.Globalization.CultureInfo.InvariantCulture, out seconds))
                throw new DaemonException(400, $"timeout is not a number of seconds: '{t[0]}'", "timeout");
            await service.ShutdownAsync(name, TimeSpan.FromSeconds(seconds));
            await Message(ctx, $"domain '{name}' is shut off", "shut off");
        }));
        app.MapPost("/v1/domains/{name}/destroy", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await service.DestroyAsync(name);
            await Message(ctx, $"domain '{name}' destroyed", "shut off");
        }));
        app.MapPost("/v1/domains/{name}/reboot", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await service.RebootAsync(name);
            await Message(ctx, $"domain '{name}' is being rebooted", "running");
        }));
        app.MapPost("/v1/domains/{name}/suspend", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await service.SuspendAsync(name);
            await Message(ctx, $"domain '{name}' suspended", "paused");
        }));
        app.MapPost("/v1/domains/{name}/resume", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            await service.ResumeAsync(name);
            await Message(ctx, $"domain '{name}' resumed", "running");
        }));
    }
}
