using System.Text.Json.Serialization;
using Kiln.Contracts.Spec;

namespace Kiln.Contracts.Snapshot;

/// <summary>The Config section as Kiln wrote it before the section carried a <see cref="VmSpec"/> (flat fields, no
/// "version"). Read so that those snapshots still restore; never written.</summary>
public sealed class LegacySnapshotConfig
{
    [JsonPropertyName("kernel")] public string KernelPath { get; set; } = "";
    [JsonPropertyName("initrd")] public string? InitrdPath { get; set; }
    [JsonPropertyName("cmdline")] public string? CommandLine { get; set; }
    [JsonPropertyName("memoryBytes")] public ulong MemoryBytes { get; set; }
    [JsonPropertyName("cpus")] public int CpuCount { get; set; }
    [JsonPropertyName("debugExitPort")] public ushort? DebugExitPort { get; set; }
    [JsonPropertyName("noReboot")] public bool NoReboot { get; set; }
    [JsonPropertyName("disks")] public List<LegacyDisk> Disks { get; set; } = [];
    [JsonPropertyName("nics")] public List<LegacyNic> Nics { get; set; } = [];
    [JsonPropertyName("rng")] public bool Rng { get; set; }
    [JsonPropertyName("console")] public string Console { get; set; } = "serial";
    [JsonPropertyName("transport")] public string Transport { get; set; } = "pci";

    public sealed class LegacyDisk
    {
        [JsonPropertyName("path")] public string? Path { get; set; }
        [JsonPropertyName("readOnly")] public bool ReadOnly { get; set; }
        [JsonPropertyName("serial")] public string? Serial { get; set; }
        [JsonPropertyName("format")] public string? Format { get; set; }
    }

    public sealed class LegacyNic
    {
        [JsonPropertyName("tap")] public string? Tap { get; set; }
        [JsonPropertyName("mac")] public string? Mac { get; set; }
        [JsonPropertyName("bridge")] public string? Bridge { get; set; }
    }

    /// <summary>The same machine as a spec (not yet validated); an enum value no Kiln wrote is a spec error.</summary>
    public VmSpec ToSpec() => new()
    {
        Machine = new MachineSpec
        {
            MemoryBytes = MemoryBytes, Cpus = CpuCount, NoReboot = NoReboot,
            Transport = Enum<VirtioTransport>("transport", Transport),
        },
        Boot = new BootSpec { Kernel = KernelPath, Initrd = InitrdPath, CommandLine = CommandLine },
        Disks = [.. Disks.Select(d => new DiskSpec { Path = d.Path ?? "", ReadOnly = d.ReadOnly, Serial = d.Serial, Format = d.Format })],
        Nics = [.. Nics.Select(n => new NicSpec { Tap = n.Tap ?? "", Mac = n.Mac, Bridge = n.Bridge })],
        Console = Enum<ConsoleKind>("console", Console),
        Devices = new DeviceSpec { Rng = Rng, DebugExitPort = DebugExitPort },
    };

    private static T Enum<T>(string field, string value) where T : struct, System.Enum =>
        SpecEnum.TryParse(value, out T result) ? result
            : throw new VmSpecException(field, $"'{value}' is not one of {SpecEnum.Names<T>()}");
}
