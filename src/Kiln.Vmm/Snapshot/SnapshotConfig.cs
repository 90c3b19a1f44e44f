using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Virtio.Net;

namespace Kiln.Vmm.Snapshot;

/// <summary>The VM configuration as stored in a snapshot (the Config section): plain JSON fields, so the file does
/// not depend on how <see cref="VmConfig"/>'s types happen to serialize.</summary>
public sealed class SnapshotConfig
{
    [JsonPropertyName("kernel")] public string KernelPath { get; set; } = "";
    [JsonPropertyName("initrd")] public string? InitrdPath { get; set; }
    [JsonPropertyName("cmdline")] public string? CommandLine { get; set; }
    [JsonPropertyName("memoryBytes")] public ulong MemoryBytes { get; set; }
    [JsonPropertyName("cpus")] public int CpuCount { get; set; }
    [JsonPropertyName("debugExitPort")] public ushort? DebugExitPort { get; set; }
    [JsonPropertyName("noReboot")] public bool NoReboot { get; set; }
    [JsonPropertyName("disks")] public List<SnapshotDisk> Disks { get; set; } = [];
    [JsonPropertyName("nics")] public List<SnapshotNic> Nics { get; set; } = [];
    [JsonPropertyName("rng")] public bool Rng { get; set; }
    [JsonPropertyName("console")] public string Console { get; set; } = "serial";
    [JsonPropertyName("transport")] public string Transport { get; set; } = "pci";

    public static SnapshotConfig From(VmConfig c) => new()
    {
        KernelPath = c.KernelPath, InitrdPath = c.InitrdPath, CommandLine = c.CommandLine, MemoryBytes = c.MemoryBytes,
        CpuCount = c.CpuCount, DebugExitPort = c.DebugExitPort, NoReboot = c.NoReboot,
        Disks = [.. c.Disks.Select(d => new SnapshotDisk { Path = d.Path, ReadOnly = d.ReadOnly, Serial = d.Serial, Format = d.Format })],
        Nics = [.. c.Nics.Select(n => new SnapshotNic { Tap = n.Tap, Mac = n.Mac?.ToString(), Bridge = n.Bridge })],
        Rng = c.Rng, Console = c.Console.ToString().ToLowerInvariant(), Transport = c.Transport.ToString().ToLowerInvariant(),
    };

    /// <summary>Back to a <see cref="VmConfig"/>; a value no Kiln would have written is refused.</summary>
    public VmConfig ToVmConfig()
    {
        if (KernelPath.Length == 0)
            throw Bad("no kernel path");
        if (CpuCount < 1 || CpuCount > VmConfig.MaxCpus)
            throw Bad($"{CpuCount} vCPUs");
        if (MemoryBytes == 0 || MemoryBytes % 4096 != 0)
            throw Bad($"memory size {MemoryBytes}");
        return new VmConfig
        {
            KernelPath = KernelPath, InitrdPath = InitrdPath, CommandLine = CommandLine, MemoryBytes = MemoryBytes,
            CpuCount = CpuCount, DebugExitPort = DebugExitPort, NoReboot = NoReboot,
            Disks = [.. Disks.Select(d => new DiskConfig(d.Path ?? throw Bad("a disk without a path"), d.ReadOnly, d.Serial, d.Format))],
            Nics = [.. Nics.Select(ToNic)],
            Rng = Rng,
            Console = ParseEnum<ConsoleKind>("console", Console),
            Transport = ParseEnum<VirtioTransportKind>("transport", Transport),
        };
    }

    private static NetDeviceOptions ToNic(SnapshotNic n)
    {
        try
        {
            return new NetDeviceOptions(n.Tap ?? throw Bad("a NIC without a TAP name"),
                n.Mac is null ? null : MacAddress.Parse(n.Mac), n.Bridge);
        }
        catch (FormatException e)
        {
            throw Bad(e.Message);
        }
    }

    private static T ParseEnum<T>(string field, string value) where T : struct, Enum =>
        Enum.TryParse<T>(value, ignoreCase: true, out var result) && Enum.IsDefined(result)
            ? result : throw Bad($"{field} '{value}'");

    private static SnapshotException Bad(string what) => new($"snapshot config is invalid: {what}");

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, SnapshotJsonContext.Default.SnapshotConfig);

    public static SnapshotConfig FromJson(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, SnapshotJsonContext.Default.SnapshotConfig) ?? throw Bad("null");
        }
        catch (JsonException e)
        {
            throw new SnapshotException($"snapshot config is not valid JSON: {e.Message}");
        }
    }
}

public sealed class SnapshotDisk
{
    [JsonPropertyName("path")] public string? Path { get; set; }
    [JsonPropertyName("readOnly")] public bool ReadOnly { get; set; }
    [JsonPropertyName("serial")] public string? Serial { get; set; }
    [JsonPropertyName("format")] public string? Format { get; set; }
}

public sealed class SnapshotNic
{
    [JsonPropertyName("tap")] public string? Tap { get; set; }
    [JsonPropertyName("mac")] public string? Mac { get; set; }
    [JsonPropertyName("bridge")] public string? Bridge { get; set; }
}

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

[JsonSerializable(typeof(SnapshotConfig))]
[JsonSerializable(typeof(SnapshotInfo))]
public sealed partial class SnapshotJsonContext : JsonSerializerContext;
