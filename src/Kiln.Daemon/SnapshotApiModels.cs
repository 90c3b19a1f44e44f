using System.Text.Json.Serialization;

namespace Kiln.Daemon;

/// <summary>POST /v1/domains/{name}/save and POST /v1/restore: a snapshot file on the daemon's host.</summary>
public sealed class SnapshotFileRequest
{
    [JsonPropertyName("file")] public string File { get; set; } = "";
}

/// <summary>POST /v1/domains/{name}/snapshots: an optional snapshot name (default: the UTC time).</summary>
public sealed class CreateSnapshotRequest
{
    [JsonPropertyName("name")] public string? Name { get; set; }
}

/// <summary>One snapshot kept by the daemon under STATE/snapshots/DOMAIN/NAME.ksnap.</summary>
public sealed class SnapshotEntry
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("domain")] public string Domain { get; set; } = "";
    [JsonPropertyName("file")] public string File { get; set; } = "";
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The file's apparent size: guest RAM plus state (zero pages are holes, so it occupies less on disk).</summary>
    [JsonPropertyName("sizeBytes")] public long SizeBytes { get; set; }

    /// <summary>How long the guest was paused while it was written (only when just created).</summary>
    [JsonPropertyName("pausedMs")] public double? PausedMs { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(SnapshotFileRequest))]
[JsonSerializable(typeof(CreateSnapshotRequest))]
[JsonSerializable(typeof(SnapshotEntry))]
[JsonSerializable(typeof(List<SnapshotEntry>))]
public sealed partial class SnapshotApiJsonContext : JsonSerializerContext;
