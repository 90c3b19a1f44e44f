using System.Text.Json.Serialization;

namespace Kiln.Daemon;

/// <summary>A domain definition: what `kiln define` stores and `kiln start` boots (docs/domain-format.md).</summary>
public sealed class DomainDefinition
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("uuid")] public string? Uuid { get; set; }
    [JsonPropertyName("memoryMiB")] public ulong MemoryMiB { get; set; } = 512;
    [JsonPropertyName("vcpus")] public int Vcpus { get; set; } = 1;
    [JsonPropertyName("os")] public DomainOs Os { get; set; } = new();
    [JsonPropertyName("disks")] public List<DomainDisk> Disks { get; set; } = [];
    [JsonPropertyName("interfaces")] public List<DomainInterface> Interfaces { get; set; } = [];

    /// <summary>serial (COM1, ttyS0) or virtio (hvc0).</summary>
    [JsonPropertyName("console")] public string Console { get; set; } = "serial";

    /// <summary>pci or mmio.</summary>
    [JsonPropertyName("transport")] public string Transport { get; set; } = "pci";
    [JsonPropertyName("rng")] public bool Rng { get; set; }
    [JsonPropertyName("autostart")] public bool Autostart { get; set; }

    /// <summary>What a guest reset does: restart (reboot) or destroy (the domain shuts off).</summary>
    [JsonPropertyName("onReboot")] public string OnReboot { get; set; } = "restart";

    /// <summary>What a crashed VMM leads to: destroy (stay crashed) or restart.</summary>
    [JsonPropertyName("onCrash")] public string OnCrash { get; set; } = "destroy";
}

public sealed class DomainOs
{
    [JsonPropertyName("kernel")] public string Kernel { get; set; } = "";
    [JsonPropertyName("initrd")] public string? Initrd { get; set; }
    [JsonPropertyName("cmdline")] public string? Cmdline { get; set; }
}

public sealed class DomainDisk
{
    [JsonPropertyName("path")] public string Path { get; set; } = "";

    /// <summary>raw or qcow2.</summary>
    [JsonPropertyName("format")] public string Format { get; set; } = "raw";

    /// <summary>vda, vdb, ...: the order of the guest's virtio-blk devices.</summary>
    [JsonPropertyName("target")] public string Target { get; set; } = "";
    [JsonPropertyName("readonly")] public bool ReadOnly { get; set; }
    [JsonPropertyName("serial")] public string? Serial { get; set; }
}

public sealed class DomainInterface
{
    /// <summary>ethernet (a TAP device) or bridge (a TAP device added to a bridge).</summary>
    [JsonPropertyName("type")] public string Type { get; set; } = "ethernet";
    [JsonPropertyName("mac")] public string? Mac { get; set; }

    /// <summary>The TAP device's name (libvirt's &lt;target dev&gt;).</summary>
    [JsonPropertyName("tap")] public string? Tap { get; set; }
    [JsonPropertyName("bridge")] public string? Bridge { get; set; }
    [JsonPropertyName("model")] public string Model { get; set; } = "virtio";
}

/// <summary>shut off, running, paused, crashed — virsh's names.</summary>
public enum DomainState
{
    ShutOff,
    Running,
    Paused,
    Crashed,
}

public static class DomainStateNames
{
    public static string Name(this DomainState state) => state switch
    {
        DomainState.ShutOff => "shut off",
        DomainState.Running => "running",
        DomainState.Paused => "paused",
        _ => "crashed",
    };
}

/// <summary>What the daemon records about a running VMM so a restarted daemon can re-attach (run/NAME.json).</summary>
public sealed class RuntimeRecord
{
    [JsonPropertyName("pid")] public int Pid { get; set; }

    /// <summary>The process's start time in clock ticks (/proc/PID/stat field 22), so a reused pid is not mistaken for it.</summary>
    [JsonPropertyName("startTicks")] public long StartTicks { get; set; }
    [JsonPropertyName("socket")] public string Socket { get; set; } = "";
    [JsonPropertyName("startedAt")] public DateTimeOffset StartedAt { get; set; }
    [JsonPropertyName("paused")] public bool Paused { get; set; }
}

/// <summary>The last end of a domain, kept so `crashed` (with its reason) survives a daemon restart (run/NAME.last.json).</summary>
public sealed class LastExitRecord
{
    [JsonPropertyName("state")] public string State { get; set; } = "shut off";
    [JsonPropertyName("reason")] public string? Reason { get; set; }
}
