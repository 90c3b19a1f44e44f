using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Contracts.Spec;

namespace Kiln.Contracts.Control;

/// <summary>What turns a VMM process into one VM: the spec, and what belongs to this process rather than to the VM
/// (its control socket, where its console and log go, a migration's one-time token). The daemon writes it as one
/// JSON line to a standby VMM's stdin (`kiln vmm-standby`); `kiln run` builds it from its flags.</summary>
public sealed class VmmLaunch
{
    [JsonPropertyName("spec")] public VmSpec Spec { get; set; } = new();

    /// <summary>Serve the control protocol on this Unix socket; the console then goes there and to stdout.</summary>
    [JsonPropertyName("controlSocket")] public string? ControlSocket { get; set; }

    /// <summary>The file stdout and stderr go to from the launch on (a daemon domain's console log).</summary>
    [JsonPropertyName("log")] public string? LogPath { get; set; }

    /// <summary>An incoming migration's one-time token (kept off command lines and out of the spec).</summary>
    [JsonPropertyName("migrationToken")] public string? MigrationToken { get; set; }

    /// <summary>Print exit counts when the VM stops.</summary>
    [JsonPropertyName("stats")] public bool Stats { get; set; }

    public static VmmLaunch Parse(string line)
    {
        VmmLaunch? launch;
        try
        {
            launch = JsonSerializer.Deserialize(line, LaunchJsonContext.Default.VmmLaunch);
        }
        catch (JsonException e)
        {
            throw e.Path?.StartsWith("$.spec", StringComparison.Ordinal) == true
                ? VmSpecJson.FromJsonException(new SpecPathException(e))
                : new VmSpecException("$", $"malformed launch line: {e.Message}");
        }
        if (launch is null)
            throw new VmSpecException("$", "the launch line is null");
        VmSpecValidator.Check(launch.Spec);
        return launch;
    }

    public string ToJsonLine() => JsonSerializer.Serialize(this, LaunchJsonContext.Default.VmmLaunch);

    /// <summary>A reader error inside "spec", with the path made relative to the spec.</summary>
    private sealed class SpecPathException(JsonException inner)
        : JsonException(inner.Message, inner.Path is { } p && p.StartsWith("$.spec.", StringComparison.Ordinal) ? "$." + p[7..] : "$",
            inner.LineNumber, inner.BytePositionInLine, inner);
}

/// <summary>The VMM's one answer to a launch, on the pipe the daemon reads: either it runs (its control socket is
/// up and the first machine is built or, for an incoming migration, listening) or why not, with the spec field
/// when the spec was at fault.</summary>
public sealed class VmmLaunchReply
{
    [JsonPropertyName("ok")] public bool Ok { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
    [JsonPropertyName("field")] public string? Field { get; set; }
    [JsonPropertyName("pid")] public int? Pid { get; set; }

    public string ToJsonLine() => JsonSerializer.Serialize(this, LaunchJsonContext.Default.VmmLaunchReply);

    public static VmmLaunchReply? TryParse(string line)
    {
        try
        {
            return JsonSerializer.Deserialize(line, LaunchJsonContext.Default.VmmLaunchReply);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(VmmLaunch))]
[JsonSerializable(typeof(VmmLaunchReply))]
public sealed partial class LaunchJsonContext : JsonSerializerContext;
