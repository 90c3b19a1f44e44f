using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Kiln.Daemon.Http;

/// <summary>The snapshot routes of the HTTP/JSON API (see <see cref="Supervisor"/>'s snapshot methods).</summary>
internal static class SnapshotRoutes
{
    public static void Map(WebApplication app, DomainService sup)
    {
        var json = SnapshotApiJsonContext.Default;
        app.MapPost("/v1/domains/{name}/save", (HttpContext ctx, string name) => HttpResults.Handle(ctx, async () =>
        {
            var request = await HttpResults.ReadJson(ctx, json.SnapshotFileRequest);
            await sup.SaveAsync(name, request.File);
            await HttpResults.Message(ctx, $"domain '{name}' saved to {request.File}", "shut off");
        }));
        app.MapPost("/v1/restore", ctx => HttpResults.Handle(ctx, async () =>
        {
            var request = await HttpResults.ReadJson(ctx, json.SnapshotFileRequest);
            string name = await sup.RestoreAsync(request.File);
            await HttpResults.Message(ctx, $"domain '{name}' restored from {request.File}", "running");
        }));
        app.MapPost("/v1/domains/{name}/snapshots", (HttpContext ctx, string name) => HttpResults.Handle(ctx, async () =>
        {
            var request = await HttpResults.ReadJson(ctx, json.CreateSnapshotRequest);
            await HttpResults.Write(ctx, 201, await sup.CreateSnapshotAsync(name, request.Name), json.SnapshotEntry);
        }));
        app.MapGet("/v1/domains/{name}/snapshots", (HttpContext ctx, string name) => HttpResults.Handle(ctx, () =>
            HttpResults.Write(ctx, 200, sup.ListSnapshots(name), json.ListSnapshotEntry)));
        app.MapPost("/v1/domains/{name}/snapshots/{snapshot}/revert", (HttpContext ctx, string name, string snapshot) =>
            HttpResults.Handle(ctx, async () =>
            {
                await sup.RevertSnapshotAsync(name, snapshot);
                await HttpResults.Message(ctx, $"domain '{name}' reverted to snapshot '{snapshot}'", "running");
            }));
        app.MapDelete("/v1/domains/{name}/snapshots/{snapshot}", (HttpContext ctx, string name, string snapshot) =>
            HttpResults.Handle(ctx, () =>
            {
                sup.DeleteSnapshot(name, snapshot);
                return HttpResults.Message(ctx, $"snapshot '{snapshot}' of domain '{name}' deleted");
            }));
    }
}
