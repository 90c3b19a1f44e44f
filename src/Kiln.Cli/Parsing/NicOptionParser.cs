using Kiln.Contracts.Spec;
using Kiln.Interop;

namespace Kiln.Cli;

/// <summary>One <c>--net</c> argument: <c>tap=NAME[,mac=xx:xx:xx:xx:xx:xx][,bridge=BR]</c>.</summary>
public static class NicOptionParser
{
    /// <summary>Parses the argument; throws <see cref="FormatException"/> with a one-line message.</summary>
    public static NicSpec Parse(string text)
    {
        string? tap = null, bridge = null, mac = null;
        foreach (string item in text.Split(','))
        {
            int eq = item.IndexOf('=');
            string key = eq < 0 ? item : item[..eq], value = eq < 0 ? "" : item[(eq + 1)..];
            if (value.Length == 0)
                throw new FormatException($"--net {text}: '{item}' needs a value (key=value)");
            switch (key)
            {
                case "tap" when tap is null: tap = value; break;
                case "mac" when mac is null:
                    mac = MacText.TryNormalize(value, out string normalized, out string error) ? normalized : throw new FormatException(error);
                    break;
                case "bridge" when bridge is null: bridge = value; break;
                case "tap" or "mac" or "bridge": throw new FormatException($"--net {text}: '{key}' given twice");
                default: throw new FormatException($"--net {text}: unknown option '{key}' (tap=NAME[,mac=MAC][,bridge=BR])");
            }
        }
        if (tap is null)
            throw new FormatException($"--net {text}: tap=NAME is required");
        if (!IfReq.IsValidName(tap))
            throw new FormatException($"--net {text}: invalid interface name '{tap}'");
        if (bridge is not null && !IfReq.IsValidName(bridge))
            throw new FormatException($"--net {text}: invalid bridge name '{bridge}'");
        return new NicSpec { Tap = tap, Mac = mac, Bridge = bridge };
    }
}
