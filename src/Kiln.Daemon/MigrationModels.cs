using System.Text.Json.Serialization;

namespace Kiln.Daemon;

/// <summary>POST /v1/migrations/incoming (daemon to daemon): the domain's definition (Kiln JSON); the destination
/// daemon starts a VMM waiting for the stream and answers with its port and a one-time token.</summary>
public sealed class IncomingMigrationRequest
{
    [JsonPropertyName("definition")] public string Definition { get; set; } = "";

    /// <summary>The source streams the writable disks: images absent here are created by the incoming VMM (and
    /// removed again if the migration fails); without it every disk must already be here (shared storage).</summary>
    [JsonPropertyName("copyStorage")] public bool CopyStorage { get; set; }
}

public sealed class IncomingMigrationResponse
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("port")] public int Port { get; set; }
    [JsonPropertyName("token")] public string Token { get; set; } = "";

    /// <summary>The VMM's stream is TLS (with the destination daemon's certificate).</summary>
    [JsonPropertyName("tls")] public bool Tls { get; set; }
}

/// <summary>POST /v1/domains/{name}/migrate (CLI to the source daemon). The answer is a stream of JSON lines: the
/// VMM's migration progress events, ending with a <c>migrated</c> or <c>migration-failed</c> event.</summary>
public sealed class MigrateRequest
{
    /// <summary>The destination daemon's API: tcp://HOST:PORT (TLS + bearer token).</summary>
    [JsonPropertyName("destination")] public string Destination { get; set; } = "";
    [JsonPropertyName("destinationToken")] public string? DestinationToken { get; set; }

    /// <summary>PEM of a CA that signs the destination daemon's certificate (else the system roots).</summary>
    [JsonPropertyName("destinationCa")] public string? DestinationCa { get; set; }
    [JsonPropertyName("insecure")] public bool Insecure { get; set; }
    [JsonPropertyName("maxDowntimeMs")] public int? MaxDowntimeMs { get; set; }

    /// <summary>The most the migration stream may carry, MB/s (virsh migrate --bandwidth); null: no cap.</summary>
    [JsonPropertyName("maxBandwidthMBps")] public int? MaxBandwidthMBps { get; set; }
    [JsonPropertyName("copyStorage")] public bool CopyStorage { get; set; }
}
