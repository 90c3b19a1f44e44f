namespace Kiln.Virtio.Net;

/// <summary>One <c>--net</c> argument: <c>tap=NAME[,mac=xx:xx:xx:xx:xx:xx][,bridge=BR]</c>.</summary>
public sealed record NetDeviceOptions(string Tap, MacAddress? Mac = null, string? Bridge = null)
{
    /// <summary>Parses the argument; throws <see cref="FormatException"/> with a one-line message.</summary>
    public static NetDeviceOptions Parse(string text)
    {
        string? tap = null, bridge = null;
        MacAddress? mac = null;
        foreach (string item in text.Split(','))
        {
            int eq = item.IndexOf('=');
            string key = eq < 0 ? item : item[..eq], value = eq < 0 ? "" : item[(eq + 1)..];
            if (value.Length == 0)
                throw new FormatException($"--net {text}: '{item}' needs a value (key=value)");
            switch (key)
            {
                case "tap" when tap is null: tap = value; break;
                case "mac" when mac is null: mac = MacAddress.Parse(value); break;
                case "bridge" when bridge is null: bridge = value; break;
                case "tap" or "mac" or "bridge": throw new FormatException($"--net {text}: '{key}' given twice");
                default: throw new FormatException($"--net {text}: unknown option '{key}' (tap=NAME[,mac=MAC][,bridge=BR])");
            }
        }
        if (tap is null)
            throw new FormatException($"--net {text}: tap=NAME is required");
        if (!Interop.IfReq.IsValidName(tap))
            throw new FormatException($"--net {text}: invalid interface name '{tap}'");
        if (bridge is not null && !Interop.IfReq.IsValidName(bridge))
            throw new FormatException($"--net {text}: invalid bridge name '{bridge}'");
        return new NetDeviceOptions(tap, mac, bridge);
    }
}
