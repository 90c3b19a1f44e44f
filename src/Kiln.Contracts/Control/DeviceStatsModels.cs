using System.Text.Json.Serialization;

namespace Kiln.Contracts.Control;

/// <summary>One virtio-blk disk's counters on the <c>stats</c> command (virsh domstats block.N.*).</summary>
public sealed class DiskStats
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("path")] public string? Path { get; set; }
    [JsonPropertyName("readBytes")] public long ReadBytes { get; set; }
    [JsonPropertyName("readRequests")] public long ReadRequests { get; set; }
    [JsonPropertyName("writeBytes")] public long WriteBytes { get; set; }
    [JsonPropertyName("writeRequests")] public long WriteRequests { get; set; }
    [JsonPropertyName("flushes")] public long Flushes { get; set; }
    [JsonPropertyName("errors")] public long Errors { get; set; }
}

/// <summary>One virtio-net NIC's counters (virsh domstats net.N.*).</summary>
public sealed class NicStats
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("tap")] public string? Tap { get; set; }
    [JsonPropertyName("rxBytes")] public long RxBytes { get; set; }
    [JsonPropertyName("rxPackets")] public long RxPackets { get; set; }
    [JsonPropertyName("rxDropped")] public long RxDropped { get; set; }
    [JsonPropertyName("txBytes")] public long TxBytes { get; set; }
    [JsonPropertyName("txPackets")] public long TxPackets { get; set; }
    [JsonPropertyName("txDropped")] public long TxDropped { get; set; }
}

/// <summary>One vCPU thread's CPU time (virsh domstats vcpu.N.time), user plus system, in seconds.</summary>
public sealed class VcpuTime
{
    [JsonPropertyName("id")] public int Id { get; set; }
    [JsonPropertyName("cpuTimeSeconds")] public double CpuTimeSeconds { get; set; }
}
