using System.Text.Json.Serialization;
using Kiln.Contracts.Control;

namespace Kiln.Daemon;

public sealed class ApiError
{
    [JsonPropertyName("error")] public string Error { get; set; } = "";
    [JsonPropertyName("field")] public string? Field { get; set; }
}

public sealed class DomainSummary
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("uuid")] public string? Uuid { get; set; }
    [JsonPropertyName("state")] public string State { get; set; } = "";
    [JsonPropertyName("reason")] public string? Reason { get; set; }
    [JsonPropertyName("pid")] public int? Pid { get; set; }
    [JsonPropertyName("autostart")] public bool Autostart { get; set; }
}

public sealed class DomainInfo
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("uuid")] public string? Uuid { get; set; }
    [JsonPropertyName("state")] public string State { get; set; } = "";
    [JsonPropertyName("reason")] public string? Reason { get; set; }
    [JsonPropertyName("pid")] public int? Pid { get; set; }
    [JsonPropertyName("vcpus")] public int Vcpus { get; set; }
    [JsonPropertyName("memoryMiB")] public ulong MemoryMiB { get; set; }
    [JsonPropertyName("autostart")] public bool Autostart { get; set; }
    [JsonPropertyName("persistent")] public bool Persistent { get; set; } = true;
    [JsonPropertyName("uptimeSeconds")] public double? UptimeSeconds { get; set; }
    [JsonPropertyName("definition")] public DomainDefinition? Definition { get; set; }
}

public sealed class MessageResponse
{
    [JsonPropertyName("message")] public string Message { get; set; } = "";
    [JsonPropertyName("state")] public string? State { get; set; }
}

public sealed class AutostartRequest
{
    [JsonPropertyName("enabled")] public bool Enabled { get; set; }
}

public sealed class AttachDiskRequest
{
    [JsonPropertyName("source")] public string Source { get; set; } = "";
    [JsonPropertyName("target")] public string Target { get; set; } = "";
    [JsonPropertyName("format")] public string? Format { get; set; }
    [JsonPropertyName("readonly")] public bool ReadOnly { get; set; }
}

public sealed class DomainStats
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("state")] public string State { get; set; } = "";
    [JsonPropertyName("vmm")] public ControlResponse? Vmm { get; set; }
    [JsonPropertyName("cpuTimeSeconds")] public double? CpuTimeSeconds { get; set; }
    [JsonPropertyName("rssBytes")] public long? RssBytes { get; set; }
}

/// <summary>A lifecycle event on GET /v1/events (server-sent events, one JSON object per `data:` line).</summary>
public sealed class LifecycleEvent
{
    [JsonPropertyName("time")] public DateTimeOffset Time { get; set; }
    [JsonPropertyName("domain")] public string Domain { get; set; } = "";

    /// <summary>defined, undefined, started, suspended, resumed, shutdown, stopped, crashed, rebooted</summary>
    [JsonPropertyName("event")] public string Event { get; set; } = "";
    [JsonPropertyName("detail")] public string? Detail { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(DomainDefinition))]
[JsonSerializable(typeof(RuntimeRecord))]
[JsonSerializable(typeof(LastExitRecord))]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(DomainSummary))]
[JsonSerializable(typeof(List<DomainSummary>))]
[JsonSerializable(typeof(DomainInfo))]
[JsonSerializable(typeof(MessageResponse))]
[JsonSerializable(typeof(AutostartRequest))]
[JsonSerializable(typeof(AttachDiskRequest))]
[JsonSerializable(typeof(DomainStats))]
[JsonSerializable(typeof(LifecycleEvent))]
[JsonSerializable(typeof(IncomingMigrationRequest))]
[JsonSerializable(typeof(IncomingMigrationResponse))]
[JsonSerializable(typeof(MigrateRequest))]
public sealed partial class DaemonJsonContext : JsonSerializerContext;
