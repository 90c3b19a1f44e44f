using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Contracts.Snapshot;

/// <summary>The Info section: when and by whom the snapshot was written.</summary>
public sealed class SnapshotInfo
{
    /// <summary>Host wall-clock time at save, Unix nanoseconds. A restore advances the guest's kvmclock by the time
    /// since, so the guest's clock neither stalls nor runs backwards.</summary>
    [JsonPropertyName("savedAtUnixNs")] public long SavedAtUnixNs { get; set; }
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("writer")] public string Writer { get; set; } = "kiln";

    public DateTimeOffset SavedAt => DateTimeOffset.FromUnixTimeMilliseconds(SavedAtUnixNs / 1_000_000);

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, SnapshotJsonContext.Default.SnapshotInfo);

    public static SnapshotInfo FromJson(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, SnapshotJsonContext.Default.SnapshotInfo)
                ?? throw new SnapshotException("snapshot info is null");
        }
        catch (JsonException e)
        {
            throw new SnapshotException($"snapshot info is not valid JSON: {e.Message}");
        }
    }

    public static long NowUnixNs() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
}

[JsonSerializable(typeof(SnapshotInfo))]
[JsonSerializable(typeof(LegacySnapshotConfig))]
public sealed partial class SnapshotJsonContext : JsonSerializerContext;
