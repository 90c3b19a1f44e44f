using System.Text.Json.Serialization;

namespace Kiln.Contracts.Spec;

/// <summary>Everything that defines one VM, in the one shape every layer uses: the CLI's flags, a daemon domain
/// definition (Kiln JSON or libvirt XML) and a snapshot's saved machine all map to it, and the daemon hands it to a
/// VMM as it is. Immutable; <see cref="VmSpecValidator"/> checks it once, naming the field of every error;
/// <see cref="VmSpecJson"/> reads and writes it (source-generated JSON). <see cref="Version"/> changes when a field
/// changes meaning, so a VMM never misreads a spec written by another Kiln.</summary>
public sealed record VmSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public VmSpec(int version = CurrentVersion, string? name = null, MachineSpec? machine = null, BootSpec? boot = null, IReadOnlyList<DiskSpec>? disks = null, IReadOnlyList<NicSpec>? nics = null, ConsoleKind console = ConsoleKind.Serial, DeviceSpec? devices = null, StartSource? source = null)
    {
        Version = version;
        Name = name;
        Machine = machine ?? new();
        Boot = boot ?? new();
        Disks = disks ?? [];
        Nics = nics ?? [];
        Console = console;
        Devices = devices ?? new();
        Source = source;
    }

    public const int CurrentVersion = 1;

    [JsonPropertyName("version")] public int Version { get; init; }

    /// <summary>The VM's name (a daemon domain's name); reported on the control socket and stored in snapshots.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    [JsonPropertyName("machine")] public MachineSpec Machine { get; init; }
    [JsonPropertyName("boot")] public BootSpec Boot { get; init; }

    /// <summary>virtio-blk disks, in the order the guest sees them (vda, vdb, ...).</summary>
    [JsonPropertyName("disks")] public IReadOnlyList<DiskSpec> Disks { get; init; }

    /// <summary>virtio-net NICs on TAP interfaces, in the order the guest sees them.</summary>
    [JsonPropertyName("nics")] public IReadOnlyList<NicSpec> Nics { get; init; }

    /// <summary>Where the user's terminal (or the control socket's console) is attached.</summary>
    [JsonPropertyName("console")]
    [JsonConverter(typeof(SpecEnumConverter<ConsoleKind>))]
    public ConsoleKind Console { get; init; }

    [JsonPropertyName("devices")] public DeviceSpec Devices { get; init; }

    /// <summary>Where the first machine's state comes from: null boots the kernel; otherwise a snapshot file or an
    /// incoming live migration.</summary>
    [JsonPropertyName("source")] public StartSource? Source { get; init; }

    /// <summary>How many virtio devices the spec asks for (disks, NICs, rng, a virtio console).</summary>
    [JsonIgnore]
    public int VirtioDeviceCount => Disks.Count + Nics.Count + (Devices.Rng ? 1 : 0) + (Console == ConsoleKind.Virtio ? 1 : 0);
}

/// <summary>The machine's shape: RAM, vCPUs, how virtio devices appear, what a guest reset does.</summary>
public sealed record MachineSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public MachineSpec(ulong memoryBytes = DefaultMemoryBytes, int cpus = 1, VirtioTransport transport = VirtioTransport.Pci, bool noReboot = false)
    {
        MemoryBytes = memoryBytes;
        Cpus = cpus;
        Transport = transport;
        NoReboot = noReboot;
    }

    public const int MaxCpus = 255;
    public const ulong DefaultMemoryBytes = 512UL << 20;

    [JsonPropertyName("memoryBytes")] public ulong MemoryBytes { get; init; }
    [JsonPropertyName("cpus")] public int Cpus { get; init; }

    [JsonPropertyName("transport")]
    [JsonConverter(typeof(SpecEnumConverter<VirtioTransport>))]
    public VirtioTransport Transport { get; init; }

    /// <summary>On a guest reset, exit instead of rebooting (QEMU's -no-reboot, libvirt's on_reboot=destroy).</summary>
    [JsonPropertyName("noReboot")] public bool NoReboot { get; init; }
}

/// <summary>Direct kernel boot: a Linux bzImage or ELF vmlinux, or a multiboot ELF.</summary>
public sealed record BootSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public BootSpec(string? kernel = null, string? initrd = null, string? commandLine = null)
    {
        Kernel = kernel ?? "";
        Initrd = initrd;
        CommandLine = commandLine;
    }

    [JsonPropertyName("kernel")] public string Kernel { get; init; }
    [JsonPropertyName("initrd")] public string? Initrd { get; init; }

    /// <summary>The kernel command line; null means the default for the kernel's kind.</summary>
    [JsonPropertyName("cmdline")] public string? CommandLine { get; init; }
}

/// <summary>One virtio-blk disk: a raw file, block device or qcow2 image. <see cref="Format"/> null: probed
/// (read-only use only; a writable image's format is never guessed by the daemon, which always names it).</summary>
public sealed record DiskSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public DiskSpec(string? path = null, bool readOnly = false, string? serial = null, string? format = null)
    {
        Path = path ?? "";
        ReadOnly = readOnly;
        Serial = serial;
        Format = format;
    }

    public const int MaxSerialLength = 20; // the virtio-blk ID string

    [JsonPropertyName("path")] public string Path { get; init; }
    [JsonPropertyName("readOnly")] public bool ReadOnly { get; init; }
    [JsonPropertyName("serial")] public string? Serial { get; init; }

    /// <summary>raw or qcow2; null: probed.</summary>
    [JsonPropertyName("format")] public string? Format { get; init; }
}

/// <summary>One virtio-net NIC on a TAP interface (created if missing, optionally added to a bridge).</summary>
public sealed record NicSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public NicSpec(string? tap = null, string? mac = null, string? bridge = null)
    {
        Tap = tap ?? "";
        Mac = mac;
        Bridge = bridge;
    }

    [JsonPropertyName("tap")] public string Tap { get; init; }

    /// <summary>xx:xx:xx:xx:xx:xx, lower case, unicast; null: derived from the TAP name.</summary>
    [JsonPropertyName("mac")] public string? Mac { get; init; }
    [JsonPropertyName("bridge")] public string? Bridge { get; init; }
}

/// <summary>Platform and extra devices.</summary>
public sealed record DeviceSpec
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public DeviceSpec(bool rng = false, ushort? debugExitPort = DefaultDebugExitPort)
    {
        Rng = rng;
        DebugExitPort = debugExitPort;
    }

    public const ushort DefaultDebugExitPort = 0xF4;

    /// <summary>A virtio-rng device fed by the host's random number generator.</summary>
    [JsonPropertyName("rng")] public bool Rng { get; init; }

    /// <summary>The QEMU isa-debug-exit compatible port (4 ports wide); null: none.</summary>
    [JsonPropertyName("debugExitPort")]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] // null (no port) must be written: absent means the default
    public ushort? DebugExitPort { get; init; }
}

/// <summary>Where the first machine's state comes from instead of a boot: exactly one of the two.</summary>
public sealed record StartSource
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public StartSource(RestoreSource? restore = null, IncomingSource? incoming = null)
    {
        Restore = restore;
        Incoming = incoming;
    }

    [JsonPropertyName("restore")] public RestoreSource? Restore { get; init; }
    [JsonPropertyName("incoming")] public IncomingSource? Incoming { get; init; }
}

/// <summary>Resume the VM saved in a snapshot file. The machine's shape comes from the file; of this spec only the
/// name, the console's destination and <see cref="MachineSpec.NoReboot"/> apply.</summary>
public sealed record RestoreSource
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public RestoreSource(string? file = null, bool verify = false)
    {
        File = file ?? "";
        Verify = verify;
    }

    [JsonPropertyName("file")] public string File { get; init; }

    /// <summary>Check the CRC of all saved RAM before resuming (reads the whole file).</summary>
    [JsonPropertyName("verify")] public bool Verify { get; init; }
}

/// <summary>Receive a live migration instead of booting. The one-time token is not part of the spec (it is a
/// secret, and a spec is stored): it comes with the launch, from <see cref="TokenFile"/> or from the environment.</summary>
public sealed record IncomingSource
{
    /// <summary>Every field optional: what JSON leaves out takes its default (the reader calls this).</summary>
    [JsonConstructor]
    public IncomingSource(string? listen = null, string? tokenFile = null, string? tlsCert = null, string? tlsKey = null, int timeoutSeconds = DefaultTimeoutSeconds)
    {
        Listen = listen ?? "";
        TokenFile = tokenFile;
        TlsCert = tlsCert;
        TlsKey = tlsKey;
        TimeoutSeconds = timeoutSeconds;
    }

    public const int DefaultTimeoutSeconds = 120;

    /// <summary>tcp:ADDR:PORT to listen on (port 0: any free port, printed).</summary>
    [JsonPropertyName("listen")] public string Listen { get; init; }
    [JsonPropertyName("tokenFile")] public string? TokenFile { get; init; }
    [JsonPropertyName("tlsCert")] public string? TlsCert { get; init; }
    [JsonPropertyName("tlsKey")] public string? TlsKey { get; init; }
    [JsonPropertyName("timeoutSeconds")] public int TimeoutSeconds { get; init; }
}

public enum ConsoleKind
{
    Serial,
    Virtio,
}

public enum VirtioTransport
{
    Pci,
    Mmio,
}
