using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using static Kiln.Daemon.Http.HttpResults;

namespace Kiln.Daemon.Http;

/// <summary>/v1/domains: list, define (Kiln JSON or libvirt XML), look up, dump (XML, JSON), undefine, state, stats,
/// autostart and the persistent definition's disks.</summary>
internal static class DomainRoutes
{
    public static void Map(WebApplication app, DomainService service)
    {
        var json = DaemonJsonContext.Default;
        app.MapGet("/v1/domains", ctx => Handle(ctx, async () =>
        {
            bool all = ctx.Request.Query["all"] is var a && (a == "true" || a == "1");
            var list = service.List().Where(d => all || d.State is DomainState.Running or DomainState.Paused)
                .Select(service.Summary).ToList();
            await Write(ctx, 200, list, json.ListDomainSummary);
        }));
        app.MapPost("/v1/domains", ctx => Handle(ctx, async () =>
        {
            string body = await new StreamReader(ctx.Request.Body, Encoding.UTF8).ReadToEndAsync();
            if (string.IsNullOrWhiteSpace(body))
                throw new DaemonException(400, "the request body is empty (a JSON definition or libvirt domain XML)");
            var domain = service.Define(body);
            await Write(ctx, 201, service.Info(domain), json.DomainInfo);
        }));
        app.MapGet("/v1/domains/{name}", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, service.Info(service.Get(name)), json.DomainInfo)));
        app.MapGet("/v1/domains/{name}/xml", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            string xml = DomainCodec.ToXml(service.Get(name).Definition);
            ctx.Response.ContentType = "application/xml";
            await ctx.Response.WriteAsync(xml + "\n");
        }));
        app.MapGet("/v1/domains/{name}/definition", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, service.Get(name).Definition, json.DomainDefinition)));
        app.MapDelete("/v1/domains/{name}", (HttpContext ctx, string name) => Handle(ctx, () =>
        {
            service.Undefine(name);
            return Message(ctx, $"domain '{name}' has been undefined");
        }));
        app.MapGet("/v1/domains/{name}/state", (HttpContext ctx, string name) => Handle(ctx, () =>
            Write(ctx, 200, service.Summary(service.Get(name)), json.DomainSummary)));
        app.MapGet("/v1/domains/{name}/stats", (HttpContext ctx, string name) => Handle(ctx, async () =>
            await Write(ctx, 200, await service.StatsAsync(name), json.DomainStats)));
        app.MapPut("/v1/domains/{name}/autostart", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            var request = await ReadJson(ctx, json.AutostartRequest);
            service.SetAutostart(name, request.Enabled);
            await Message(ctx, request.Enabled ? $"domain '{name}' marked as autostarted" : $"domain '{name}' unmarked as autostarted");
        }));
        app.MapPost("/v1/domains/{name}/disks", (HttpContext ctx, string name) => Handle(ctx, async () =>
        {
            var request = await ReadJson(ctx, json.AttachDiskRequest);
            await Message(ctx, service.AttachDisk(name, request));
        }));
        app.MapDelete("/v1/domains/{name}/disks/{target}", (HttpContext ctx, string name, string target) => Handle(ctx, () =>
            Message(ctx, service.DetachDisk(name, target))));
    }
}
