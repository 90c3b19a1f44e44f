using System.Text.Json.Serialization;

namespace Kiln.Vmm.Control;

/// <summary>The one line the daemon writes to a standby VMM's stdin (`kiln vmm-standby`): the `kiln run` arguments
/// of the domain it becomes (with its control socket and name) and the console log its stdout and stderr go to.</summary>
public sealed class StandbyLaunch
{
    [JsonPropertyName("args")] public List<string> Arguments { get; set; } = [];
    [JsonPropertyName("log")] public string LogPath { get; set; } = "";

    /// <summary>Environment variables to set first (e.g. an incoming migration's token).</summary>
    [JsonPropertyName("env")] public Dictionary<string, string>? Environment { get; set; }
}

[JsonSerializable(typeof(StandbyLaunch))]
public sealed partial class StandbyJsonContext : JsonSerializerContext;
