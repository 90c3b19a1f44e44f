using Kiln.Interop;

namespace Kiln.Contracts.Spec;

/// <summary>Checks a <see cref="VmSpec"/> once, where it enters a process (CLI flags, a domain definition, a launch
/// line, a snapshot file), and lists every field that cannot work. Limits that only the machine builder can know
/// (a device overlapping another's ports) are checked there and reported the same way.</summary>
public static class VmSpecValidator
{
    public const ulong MaxMemoryBytes = 1UL << 40;

    /// <summary>virtio-mmio windows (one GSI each) and virtio-pci slots on bus 0 (slot 0 is the host bridge).</summary>
    public const int MaxMmioDevices = 9, MaxPciDevices = 31;

    /// <summary>Throws a <see cref="VmSpecException"/> naming every bad field; returns the spec for chaining.</summary>
    public static VmSpec Check(VmSpec spec)
    {
        var errors = Validate(spec);
        return errors.Count == 0 ? spec : throw new VmSpecException(errors);
    }

    public static IReadOnlyList<SpecError> Validate(VmSpec spec)
    {
        var errors = new List<SpecError>();
        void Bad(string field, string message) => errors.Add(new SpecError(field, message));

        if (spec.Version != VmSpec.CurrentVersion)
            Bad("version", $"spec version {spec.Version} is not supported (this Kiln reads version {VmSpec.CurrentVersion})");
        if (spec.Name is { } name && !IsValidName(name))
            Bad("name", $"must be 1-64 characters of letters, digits, _ . + - (got '{name}')");
        CheckMachine(spec.Machine ?? new MachineSpec(), Bad);
        bool restoring = spec.Source?.Restore is not null;
        var boot = spec.Boot ?? new BootSpec();
        if (!restoring && string.IsNullOrEmpty(boot.Kernel))
            Bad("boot.kernel", "a kernel is required");
        CheckPath("boot.kernel", boot.Kernel, Bad);
        CheckPath("boot.initrd", boot.Initrd, Bad);
        if (boot.CommandLine is { } cmdline && cmdline.Contains('\0'))
            Bad("boot.cmdline", "contains a NUL character");
        var disks = spec.Disks ?? [];
        for (int i = 0; i < disks.Count; i++)
            CheckDisk($"disks[{i}]", disks[i], Bad);
        var nics = spec.Nics ?? [];
        for (int i = 0; i < nics.Count; i++)
            CheckNic($"nics[{i}]", nics[i], Bad);
        if (spec.Devices?.DebugExitPort is > 0xFFFC)
            Bad("devices.debugExitPort", $"0x{spec.Devices.DebugExitPort:x} leaves no room for its 4 ports (at most 0xfffc)");
        int slots = spec.Machine?.Transport == VirtioTransport.Mmio ? MaxMmioDevices : MaxPciDevices;
        if (spec.VirtioDeviceCount > slots)
            Bad("machine.transport", $"{SpecEnum.Name(spec.Machine!.Transport)} has room for {slots} virtio devices, " +
                                     $"the spec has {spec.VirtioDeviceCount} (disks, NICs, rng, virtio console)");
        if (spec.Source is { } source)
            CheckSource(source, Bad);
        return errors;
    }

    public static bool IsValidName(string name) =>
        name.Length is >= 1 and <= 64 && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '+' or '-');

    private static void CheckMachine(MachineSpec m, Action<string, string> bad)
    {
        if (m.MemoryBytes < 1 << 20 || m.MemoryBytes % 4096 != 0)
            bad("machine.memoryBytes", $"guest memory must be a multiple of 4 KiB and at least 1 MiB (got {m.MemoryBytes})");
        else if (m.MemoryBytes > MaxMemoryBytes)
            bad("machine.memoryBytes", $"guest memory of {m.MemoryBytes >> 20} MiB is more than the 1 TiB Kiln supports");
        if (m.Cpus is < 1 or > MachineSpec.MaxCpus)
            bad("machine.cpus", $"must be 1 to {MachineSpec.MaxCpus} (got {m.Cpus})");
        if (m.Transport is not (VirtioTransport.Pci or VirtioTransport.Mmio)) // not Enum.IsDefined: reflection at start-up
            bad("machine.transport", $"must be one of {SpecEnum.Names<VirtioTransport>()}");
    }

    private static void CheckDisk(string at, DiskSpec? disk, Action<string, string> bad)
    {
        if (disk is null)
        {
            bad(at, "is null");
            return;
        }
        if (string.IsNullOrEmpty(disk.Path))
            bad($"{at}.path", "a path is required");
        CheckPath($"{at}.path", disk.Path, bad);
        if (disk.Serial is { } serial && (serial.Length is 0 or > DiskSpec.MaxSerialLength || serial.Any(c => c < ' ' || c > '~')))
            bad($"{at}.serial", $"must be 1 to {DiskSpec.MaxSerialLength} printable ASCII characters (virtio-blk ID limit)");
        if (disk.Format is not (null or "raw" or "qcow2"))
            bad($"{at}.format", $"format '{disk.Format}' is not supported (raw, qcow2)");
    }

    private static void CheckNic(string at, NicSpec? nic, Action<string, string> bad)
    {
        if (nic is null)
        {
            bad(at, "is null");
            return;
        }
        if (!IfReq.IsValidName(nic.Tap ?? ""))
            bad($"{at}.tap", $"invalid interface name '{nic.Tap}' (1-15 characters, no '/', ':' or spaces)");
        if (nic.Bridge is { } bridge && !IfReq.IsValidName(bridge))
            bad($"{at}.bridge", $"invalid bridge name '{bridge}'");
        if (nic.Mac is { } mac && (!MacText.TryNormalize(mac, out string normalized, out string error) || normalized != mac))
            bad($"{at}.mac", error is { Length: > 0 } e ? e : $"'{mac}' is not in canonical form ({normalized})");
    }

    private static void CheckSource(StartSource source, Action<string, string> bad)
    {
        if ((source.Restore is null) == (source.Incoming is null))
            bad("source", "give exactly one of restore and incoming");
        if (source.Restore is { } restore && string.IsNullOrEmpty(restore.File))
            bad("source.restore.file", "a snapshot file is required");
        if (source.Incoming is { } incoming)
        {
            if (!incoming.Listen.StartsWith("tcp:", StringComparison.Ordinal))
                bad("source.incoming.listen", $"'{incoming.Listen}' is not tcp:ADDR:PORT");
            if ((incoming.TlsCert is null) != (incoming.TlsKey is null))
                bad("source.incoming.tlsCert", "a TLS certificate and its key go together");
            if (incoming.TimeoutSeconds is < 1 or > 86400)
                bad("source.incoming.timeoutSeconds", $"must be 1 to 86400 (got {incoming.TimeoutSeconds})");
        }
    }

    private static void CheckPath(string field, string? path, Action<string, string> bad)
    {
        if (path is not null && path.Contains('\0'))
            bad(field, "contains a NUL character");
    }
}
