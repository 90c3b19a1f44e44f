using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Kiln.Daemon.Http;

/// <summary>How every route answers: JSON bodies with their status, a refusal as one <see cref="ApiError"/> (its
/// message one line, its field when a field was at fault), request bodies read with the same care.</summary>
internal static class HttpResults
{
    public static async Task Write<T>(HttpContext ctx, int status, T value, JsonTypeInfo<T> type)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, value, type);
    }

    /// <summary>Runs a handler, turning refusals into JSON errors with their status.</summary>
    public static async Task Handle(HttpContext ctx, Func<Task> action)
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

    public static Task Message(HttpContext ctx, string message, string? state = null) =>
        Write(ctx, 200, new MessageResponse { Message = message, State = state }, DaemonJsonContext.Default.MessageResponse);

    public static async Task<T> ReadJson<T>(HttpContext ctx, JsonTypeInfo<T> type) where T : class
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

}
