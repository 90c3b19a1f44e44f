using System.Text.Json.Serialization;

namespace Kiln.Contracts.Control;

/// <summary>The per-VM control socket's protocol: JSON lines over a Unix stream socket. A client sends one request
/// per line and reads one response line. Two commands change the connection's mode after their response:
/// <c>console</c> turns it into a raw byte stream (guest console output to the client, the client's bytes to the
/// guest's console input), and <c>watch</c> turns it into a stream of <see cref="ControlEvent"/> lines that ends
/// with an <c>exit</c> event just before the VMM exits.</summary>
public sealed class ControlRequest
{
    /// <summary>status | pause | resume | shutdown (Ctrl-Alt-Del) | power-button (ACPI) | reset | stop | stats |
    /// console | watch | save | snapshot</summary>
    [JsonPropertyName("cmd")] public string Command { get; set; } = "";

    /// <summary>For <c>console</c>: replay the recent console output (up to 64 KiB) first.</summary>
    [JsonPropertyName("history")] public bool History { get; set; }

    /// <summary>For <c>migrate</c>: the destination VMM (tcp:HOST:PORT), its one-time token, TLS, the downtime budget.
    /// The response comes at once; progress follows as <c>migration</c> events on watch connections, then
    /// <c>migrated</c> (and the VMM exits) or <c>migration-failed</c> (and the guest keeps running here).
    /// <c>migrate-abort</c> cancels a running migration.</summary>
    [JsonPropertyName("uri")] public string? Uri { get; set; }
    [JsonPropertyName("token")] public string? Token { get; set; }
    [JsonPropertyName("tls")] public bool Tls { get; set; }
    [JsonPropertyName("maxDowntimeMs")] public int? MaxDowntimeMs { get; set; }

    /// <summary>For <c>migrate</c>: the most the stream may carry, in MB/s (QEMU's max-bandwidth); null: no cap.</summary>
    [JsonPropertyName("maxBandwidthMBps")] public int? MaxBandwidthMBps { get; set; }

    /// <summary>For <c>migrate</c>: pre-copy rounds before giving up (default 30).</summary>
    [JsonPropertyName("maxRounds")] public int? MaxRounds { get; set; }

    /// <summary>For <c>migrate</c>: also stream the writable disks (the destination VMM's disks receive them).</summary>
    [JsonPropertyName("copyStorage")] public bool CopyStorage { get; set; }

    /// <summary>For <c>save</c> (write a snapshot, then stop) and <c>snapshot</c> (write one, keep running): the
    /// snapshot file, an absolute path on the VMM's host.</summary>
    [JsonPropertyName("file")] public string? File { get; set; }
}

public sealed class ControlResponse
{
    [JsonPropertyName("ok")] public bool Ok { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("pid")] public int? Pid { get; set; }

    /// <summary>running | paused | stopping</summary>
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("uptimeSeconds")] public double? UptimeSeconds { get; set; }
    [JsonPropertyName("boots")] public int? Boots { get; set; }
    [JsonPropertyName("vcpus")] public int? Vcpus { get; set; }
    [JsonPropertyName("memoryBytes")] public ulong? MemoryBytes { get; set; }
    [JsonPropertyName("exits")] public Dictionary<string, long>? Exits { get; set; }
    [JsonPropertyName("unhandledPortReads")] public long? UnhandledPortReads { get; set; }
    [JsonPropertyName("unhandledPortWrites")] public long? UnhandledPortWrites { get; set; }
    [JsonPropertyName("consoleBytes")] public long? ConsoleBytes { get; set; }

    /// <summary>For save/snapshot: the file's size, the RAM bytes actually written (zero pages are holes) and how
    /// long the guest was paused for it.</summary>
    [JsonPropertyName("snapshotBytes")] public long? SnapshotBytes { get; set; }
    [JsonPropertyName("snapshotRamDataBytes")] public long? SnapshotRamDataBytes { get; set; }
    [JsonPropertyName("pausedMs")] public double? PausedMs { get; set; }
    /// <summary>For <c>stats</c>: per-device counters and each vCPU thread's CPU time.</summary>
    [JsonPropertyName("disks")] public List<DiskStats>? Disks { get; set; }
    [JsonPropertyName("nics")] public List<NicStats>? Nics { get; set; }
    [JsonPropertyName("vcpuTimes")] public List<VcpuTime>? VcpuTimes { get; set; }
}

/// <summary>A lifecycle event on a <c>watch</c> connection: paused, resumed, reboot, exit.</summary>
public sealed class ControlEvent
{
    [JsonPropertyName("event")] public string Event { get; set; } = "";

    /// <summary>For exit: the MachineExitKind (PowerOff, Reset, DebugExit, TripleFault, UserStop, Error).</summary>
    [JsonPropertyName("kind")] public string? Kind { get; set; }
    [JsonPropertyName("code")] public int? Code { get; set; }
    [JsonPropertyName("message")] public string? Message { get; set; }

    // Live migration: "migration" (progress), "migrated", "migration-failed".
    [JsonPropertyName("phase")] public string? Phase { get; set; }
    [JsonPropertyName("round")] public int? Round { get; set; }
    [JsonPropertyName("bytesSent")] public long? BytesSent { get; set; }
    [JsonPropertyName("remainingPages")] public long? RemainingPages { get; set; }
    [JsonPropertyName("dirtyBytesPerSecond")] public double? DirtyBytesPerSecond { get; set; }
    [JsonPropertyName("linkBytesPerSecond")] public double? LinkBytesPerSecond { get; set; }
    [JsonPropertyName("expectedDowntimeMs")] public double? ExpectedDowntimeMs { get; set; }
    [JsonPropertyName("throttlePercent")] public int? ThrottlePercent { get; set; }
    [JsonPropertyName("downtimeMs")] public double? DowntimeMs { get; set; }
    [JsonPropertyName("totalMs")] public double? TotalMs { get; set; }

    /// <summary>Copy-storage: disk bytes sent, and changed disk bytes still to send.</summary>
    [JsonPropertyName("diskBytesSent")] public long? DiskBytesSent { get; set; }
    [JsonPropertyName("diskRemainingBytes")] public long? DiskRemainingBytes { get; set; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlResponse))]
[JsonSerializable(typeof(ControlEvent))]
public sealed partial class ControlJsonContext : JsonSerializerContext;
