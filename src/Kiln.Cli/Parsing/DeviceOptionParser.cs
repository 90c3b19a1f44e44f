using Kiln.Contracts.Spec;

namespace Kiln.Cli;

/// <summary>Parses device option values of the form `PATH[,key[=value]...]` (QEMU/Firecracker style).</summary>
public static class DeviceOptionParser
{
    /// <summary>`--disk PATH[,ro][,serial=ID][,format=raw|qcow2]`.</summary>
    public static DiskSpec Disk(string text)
    {
        var parts = text.Split(',');
        string path = parts[0].StartsWith("path=") ? parts[0][5..] : parts[0];
        if (path.Length == 0)
            throw new UsageException($"--disk: no path in '{text}'");
        bool readOnly = false;
        string? serial = null;
        string? format = null;
        foreach (var part in parts.Skip(1))
        {
            var (key, value) = Split(part);
            switch (key)
            {
                case "ro" or "readonly" when value is null or "on" or "true":
                    readOnly = true;
                    break;
                case "serial" when value is { Length: > 0 and <= 20 }:
                    serial = value;
                    break;
                case "serial":
                    throw new UsageException($"--disk: serial must be 1 to 20 characters (virtio-blk ID limit)");
                case "format" when value is "raw" or "qcow2":
                    format = value;
                    break;
                case "format":
                    throw new UsageException($"--disk: format '{value}' is not supported (raw, qcow2)");
                default:
                    throw new UsageException($"--disk: unknown setting '{part}' (use ro, serial=ID, format=raw|qcow2)");
            }
        }
        return new DiskSpec { Path = path, ReadOnly = readOnly, Serial = serial, Format = format };
    }

    /// <summary>`--net tap=NAME[,mac=MAC][,bridge=BR]`.</summary>
    public static NicSpec Nic(string text)
    {
        try
        {
            return NicOptionParser.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--net: {e.Message}");
        }
    }

    public static T Choice<T>(string option, string text) where T : struct, Enum =>
        SpecEnum.TryParse(text, out T value)
            ? value
            : throw new UsageException($"{option}: '{text}' is not one of {SpecEnum.Names<T>()}");

    private static (string Key, string? Value) Split(string part)
    {
        int eq = part.IndexOf('=');
        return eq < 0 ? (part, null) : (part[..eq], part[(eq + 1)..]);
    }
}
