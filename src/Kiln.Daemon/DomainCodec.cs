using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace Kiln.Daemon;

/// <summary>A definition that cannot be accepted; <see cref="Field"/> names the offending field (a JSON path or an
/// XML element/attribute path).</summary>
public sealed class DomainFormatException(string? field, string message) : KilnException(message)
{
    public string? Field { get; } = field;
}

/// <summary>Reads and writes domain definitions: Kiln's JSON (docs/domain-format.md) and the common subset of libvirt
/// domain XML for direct-kernel-boot guests.</summary>
public static partial class DomainCodec
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^vd[a-z]$")]
    private static partial Regex TargetPattern();

    [GeneratedRegex("^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")]
    private static partial Regex MacPattern();

    /// <summary>JSON or XML, told apart by the first non-blank character.</summary>
    public static DomainDefinition Parse(string text)
    {
        string trimmed = text.TrimStart();
        if (trimmed.StartsWith('<'))
            return FromXml(text);
        if (trimmed.StartsWith('{'))
            return FromJson(text);
        throw new DomainFormatException(null, "a definition is a JSON object or a libvirt <domain> XML document");
    }

    public static DomainDefinition FromJson(string json)
    {
        DomainDefinition? definition;
        try
        {
            definition = JsonSerializer.Deserialize(json, DaemonJsonContext.Default.DomainDefinition);
        }
        catch (JsonException e)
        {
            string field = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "$" : e.Path;
            // The runtime's own message may be a bare resource key (UseSystemResourceKeys), so say it ourselves.
            string detail = field == "$" ? "not a JSON object" : "missing, of the wrong type, or not a known field";
            if (e.Message.Contains("could not be mapped", StringComparison.Ordinal) || e.Message.Contains("UnmappedMember", StringComparison.Ordinal))
                detail = "not a known field";
            throw new DomainFormatException(field, $"malformed JSON at '{field}': {detail} (line {e.LineNumber + 1})");
        }
        if (definition is null)
            throw new DomainFormatException("$", "the definition is null");
        Validate(definition);
        return definition;
    }

    public static string ToJson(DomainDefinition definition) =>
        JsonSerializer.Serialize(definition, DaemonJsonContext.Default.DomainDefinition);

    /// <summary>Checks a definition and fills in defaults (uuid, disk targets). Throws naming the first bad field.</summary>
    public static void Validate(DomainDefinition d)
    {
        if (string.IsNullOrEmpty(d.Name))
            throw new DomainFormatException("name", "'name' is required");
        if (!NamePattern().IsMatch(d.Name))
            throw new DomainFormatException("name", $"'name' must be 1-64 characters of letters, digits, _ . + - (got '{d.Name}')");
        if (d.Uuid is null)
            d.Uuid = Guid.NewGuid().ToString();
        else if (!Guid.TryParse(d.Uuid, out var uuid))
            throw new DomainFormatException("uuid", $"'uuid' is not a UUID: '{d.Uuid}'");
        else
            d.Uuid = uuid.ToString();
        if (d.MemoryMiB < 1 || d.MemoryMiB > 1 << 20)
            throw new DomainFormatException("memoryMiB", $"'memoryMiB' must be 1 to 1048576 (got {d.MemoryMiB})");
        if (d.Vcpus < 1 || d.Vcpus > Contracts.Spec.MachineSpec.MaxCpus)
            throw new DomainFormatException("vcpus", $"'vcpus' must be 1 to {Contracts.Spec.MachineSpec.MaxCpus} (got {d.Vcpus})");
        if (d.Os is null || string.IsNullOrEmpty(d.Os.Kernel))
            throw new DomainFormatException("os.kernel", "'os.kernel' is required (direct kernel boot)");
        if (!Path.IsPathRooted(d.Os.Kernel))
            throw new DomainFormatException("os.kernel", $"'os.kernel' must be an absolute path (got '{d.Os.Kernel}')");
        if (d.Os.Initrd is { } initrd && !Path.IsPathRooted(initrd))
            throw new DomainFormatException("os.initrd", $"'os.initrd' must be an absolute path (got '{initrd}')");
        d.Disks ??= [];
        d.Interfaces ??= [];
        var targets = new HashSet<string>();
        for (int i = 0; i < d.Disks.Count; i++)
        {
            var disk = d.Disks[i] ?? throw new DomainFormatException($"disks[{i}]", $"'disks[{i}]' is null");
            if (string.IsNullOrEmpty(disk.Path) || !Path.IsPathRooted(disk.Path))
                throw new DomainFormatException($"disks[{i}].path", $"'disks[{i}].path' must be an absolute path");
            if (disk.Format is not ("raw" or "qcow2"))
                throw new DomainFormatException($"disks[{i}].format", $"'disks[{i}].format' must be raw or qcow2 (got '{disk.Format}')");
            if (string.IsNullOrEmpty(disk.Target))
                disk.Target = NextTarget(targets);
            if (!TargetPattern().IsMatch(disk.Target))
                throw new DomainFormatException($"disks[{i}].target", $"'disks[{i}].target' must be vda..vdz (got '{disk.Target}')");
            if (!targets.Add(disk.Target))
                throw new DomainFormatException($"disks[{i}].target", $"two disks use target '{disk.Target}'");
            if (disk.Serial is { Length: > 20 })
                throw new DomainFormatException($"disks[{i}].serial", $"'disks[{i}].serial' is longer than 20 characters");
        }
        for (int i = 0; i < d.Interfaces.Count; i++)
        {
            var nic = d.Interfaces[i] ?? throw new DomainFormatException($"interfaces[{i}]", $"'interfaces[{i}]' is null");
            if (nic.Type is not ("ethernet" or "bridge"))
                throw new DomainFormatException($"interfaces[{i}].type", $"'interfaces[{i}].type' must be ethernet or bridge (got '{nic.Type}')");
            if (nic.Type == "bridge" && string.IsNullOrEmpty(nic.Bridge))
                throw new DomainFormatException($"interfaces[{i}].bridge", $"'interfaces[{i}].bridge' is required for a bridge interface");
            if (nic.Mac is not null && !MacPattern().IsMatch(nic.Mac))
                throw new DomainFormatException($"interfaces[{i}].mac", $"'interfaces[{i}].mac' is not a MAC address: '{nic.Mac}'");
            if (nic.Model != "virtio")
                throw new DomainFormatException($"interfaces[{i}].model", $"'interfaces[{i}].model' must be virtio (got '{nic.Model}')");
            if (string.IsNullOrEmpty(nic.Tap))
                nic.Tap = $"kt{d.Uuid.Replace("-", "")[..8]}n{i}";
            if (nic.Tap.Length > 15)
                throw new DomainFormatException($"interfaces[{i}].tap", $"'interfaces[{i}].tap' is longer than 15 characters");
        }
        if (d.Console is not ("serial" or "virtio"))
            throw new DomainFormatException("console", $"'console' must be serial or virtio (got '{d.Console}')");
        if (d.Transport is not ("pci" or "mmio"))
            throw new DomainFormatException("transport", $"'transport' must be pci or mmio (got '{d.Transport}')");
        if (d.OnReboot is not ("restart" or "destroy"))
            throw new DomainFormatException("onReboot", $"'onReboot' must be restart or destroy (got '{d.OnReboot}')");
        if (d.OnCrash is not ("restart" or "destroy"))
            throw new DomainFormatException("onCrash", $"'onCrash' must be restart or destroy (got '{d.OnCrash}')");
    }

    private static string NextTarget(HashSet<string> used)
    {
        for (char c = 'a'; c <= 'z'; c++)
            if (!used.Contains($"vd{c}"))
                return $"vd{c}";
        throw new DomainFormatException("disks", "more than 26 disks");
    }

    // ---- libvirt domain XML ----

    public static DomainDefinition FromXml(string xml)
    {
        XDocument doc;
        try
        {
            doc = XDocument.Parse(xml);
        }
        catch (XmlException e)
        {
            throw new DomainFormatException("xml", $"malformed XML (line {e.LineNumber}, column {e.LinePosition}): {e.Message}");
        }
        var root = doc.Root!;
        if (root.Name.LocalName != "domain")
            throw new DomainFormatException("domain", $"the root element must be <domain> (got <{root.Name.LocalName}>)");
        var d = new DomainDefinition
        {
            Name = root.Element("name")?.Value.Trim() ?? throw new DomainFormatException("domain/name", "<name> is required"),
            Uuid = root.Element("uuid")?.Value.Trim(),
        };
        if (root.Element("memory") is { } memory)
            d.MemoryMiB = ParseMemory(memory, "domain/memory");
        else if (root.Element("currentMemory") is { } current)
            d.MemoryMiB = ParseMemory(current, "domain/currentMemory");
        if (root.Element("vcpu") is { } vcpu)
        {
            if (!int.TryParse(vcpu.Value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
                throw new DomainFormatException("domain/vcpu", $"<vcpu> is not a number: '{vcpu.Value}'");
            d.Vcpus = n;
        }
        var os = root.Element("os") ?? throw new DomainFormatException("domain/os", "<os> with <kernel> is required (direct kernel boot)");
        if (os.Element("type") is { } osType && osType.Value.Trim() != "hvm")
            throw new DomainFormatException("domain/os/type", $"<os><type> must be hvm (got '{osType.Value}')");
        d.Os = new DomainOs
        {
            Kernel = os.Element("kernel")?.Value.Trim() ?? throw new DomainFormatException("domain/os/kernel", "<os><kernel> is required (direct kernel boot)"),
            Initrd = NullIfEmpty(os.Element("initrd")?.Value.Trim()),
            Cmdline = os.Element("cmdline")?.Value.Trim(),
        };
        if (root.Element("on_reboot") is { } onReboot)
            d.OnReboot = onReboot.Value.Trim() == "destroy" ? "destroy" : "restart";
        if (root.Element("on_crash") is { } onCrash)
            d.OnCrash = onCrash.Value.Trim() is "restart" or "coredump-restart" ? "restart" : "destroy";
        var devices = root.Element("devices");
        if (devices is not null)
        {
            int i = 0;
            foreach (var disk in devices.Elements("disk"))
            {
                string where = $"domain/devices/disk[{i}]";
                if ((string?)disk.Attribute("device") is { } device && device != "disk")
                    throw new DomainFormatException($"{where}/@device", $"only device='disk' is supported (got '{device}')");
                if ((string?)disk.Attribute("type") is { } t && t is not ("file" or "block"))
                    throw new DomainFormatException($"{where}/@type", $"only type='file' or 'block' disks are supported (got '{t}')");
                var source = disk.Element("source");
                string path = (string?)source?.Attribute("file") ?? (string?)source?.Attribute("dev")
                    ?? throw new DomainFormatException($"{where}/source/@file", "<source file='...'/> is required");
                var target = disk.Element("target");
                if ((string?)target?.Attribute("bus") is { } bus && bus != "virtio")
                    throw new DomainFormatException($"{where}/target/@bus", $"only bus='virtio' is supported (got '{bus}')");
                d.Disks.Add(new DomainDisk
                {
                    Path = path,
                    Format = (string?)disk.Element("driver")?.Attribute("type") ?? "raw",
                    Target = (string?)target?.Attribute("dev") ?? "",
                    ReadOnly = disk.Element("readonly") is not null,
                    Serial = NullIfEmpty(disk.Element("serial")?.Value.Trim()),
                });
                i++;
            }
            i = 0;
            foreach (var nic in devices.Elements("interface"))
            {
                string where = $"domain/devices/interface[{i}]";
                string type = (string?)nic.Attribute("type") ?? "";
                if (type is not ("ethernet" or "bridge"))
                    throw new DomainFormatException($"{where}/@type", $"only type='ethernet' or 'bridge' interfaces are supported (got '{type}')");
                d.Interfaces.Add(new DomainInterface
                {
                    Type = type,
                    Mac = (string?)nic.Element("mac")?.Attribute("address"),
                    Tap = (string?)nic.Element("target")?.Attribute("dev"),
                    Bridge = (string?)nic.Element("source")?.Attribute("bridge"),
                    Model = (string?)nic.Element("model")?.Attribute("type") ?? "virtio",
                });
                i++;
            }
            var consoleTarget = devices.Element("console")?.Element("target");
            if ((string?)consoleTarget?.Attribute("type") == "virtio")
                d.Console = "virtio";
            if (devices.Element("rng") is not null)
                d.Rng = true;
        }
        try
        {
            Validate(d);
        }
        catch (DomainFormatException e)
        {
            throw new DomainFormatException(XmlField(e.Field), e.Message);
        }
        return d;
    }

    private static string? XmlField(string? jsonField) => jsonField switch
    {
        null => null,
        "name" => "domain/name",
        "uuid" => "domain/uuid",
        "memoryMiB" => "domain/memory",
        "vcpus" => "domain/vcpu",
        "os.kernel" => "domain/os/kernel",
        "os.initrd" => "domain/os/initrd",
        _ when jsonField.StartsWith("disks[") => "domain/devices/disk" + jsonField[5..].Replace('.', '/'),
        _ when jsonField.StartsWith("interfaces[") => "domain/devices/interface" + jsonField[10..].Replace('.', '/'),
        _ => jsonField,
    };

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static ulong ParseMemory(XElement element, string field)
    {
        if (!ulong.TryParse(element.Value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
            throw new DomainFormatException(field, $"<{element.Name.LocalName}> is not a number: '{element.Value}'");
        string unit = (string?)element.Attribute("unit") ?? "KiB";
        ulong bytesPer = unit switch
        {
            "b" or "bytes" => 1,
            "KB" => 1000,
            "k" or "KiB" => 1024,
            "MB" => 1000_000,
            "M" or "MiB" => 1 << 20,
            "GB" => 1000_000_000,
            "G" or "GiB" => 1 << 30,
            "TB" => 1000_000_000_000,
            "T" or "TiB" => 1UL << 40,
            _ => throw new DomainFormatException(field + "/@unit", $"unknown memory unit '{unit}'"),
        };
        if (value > ulong.MaxValue / bytesPer)
            throw new DomainFormatException(field, "memory size overflows");
        return (value * bytesPer) >> 20;
    }

    public static string ToXml(DomainDefinition d)
    {
        var os = new XElement("os", new XElement("type", new XAttribute("arch", "x86_64"), "hvm"), new XElement("kernel", d.Os.Kernel));
        if (d.Os.Initrd is not null)
            os.Add(new XElement("initrd", d.Os.Initrd));
        if (d.Os.Cmdline is not null)
            os.Add(new XElement("cmdline", d.Os.Cmdline));
        var devices = new XElement("devices");
        foreach (var disk in d.Disks)
        {
            var e = new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                new XElement("driver", new XAttribute("name", "kiln"), new XAttribute("type", disk.Format)),
                new XElement("source", new XAttribute("file", disk.Path)),
                new XElement("target", new XAttribute("dev", disk.Target), new XAttribute("bus", "virtio")));
            if (disk.ReadOnly)
                e.Add(new XElement("readonly"));
            if (disk.Serial is not null)
                e.Add(new XElement("serial", disk.Serial));
            devices.Add(e);
        }
        foreach (var nic in d.Interfaces)
        {
            var e = new XElement("interface", new XAttribute("type", nic.Type));
            if (nic.Mac is not null)
                e.Add(new XElement("mac", new XAttribute("address", nic.Mac)));
            if (nic.Bridge is not null)
                e.Add(new XElement("source", new XAttribute("bridge", nic.Bridge)));
            if (nic.Tap is not null)
                e.Add(new XElement("target", new XAttribute("dev", nic.Tap)));
            e.Add(new XElement("model", new XAttribute("type", nic.Model)));
            devices.Add(e);
        }
        if (d.Console == "serial")
        {
            devices.Add(new XElement("serial", new XAttribute("type", "pty"), new XElement("target", new XAttribute("port", "0"))));
            devices.Add(new XElement("console", new XAttribute("type", "pty"),
                new XElement("target", new XAttribute("type", "serial"), new XAttribute("port", "0"))));
        }
        else
            devices.Add(new XElement("console", new XAttribute("type", "pty"),
                new XElement("target", new XAttribute("type", "virtio"), new XAttribute("port", "0"))));
        if (d.Rng)
            devices.Add(new XElement("rng", new XAttribute("model", "virtio"), new XElement("backend", new XAttribute("model", "random"), "/dev/urandom")));
        var root = new XElement("domain", new XAttribute("type", "kvm"),
            new XElement("name", d.Name),
            new XElement("uuid", d.Uuid),
            new XElement("memory", new XAttribute("unit", "MiB"), d.MemoryMiB),
            new XElement("vcpu", d.Vcpus),
            os,
            new XElement("on_reboot", d.OnReboot),
            new XElement("on_crash", d.OnCrash),
            devices);
        return root.ToString();
    }
}
