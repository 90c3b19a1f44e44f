using System.Globalization;

namespace Kiln.Contracts.Spec;

/// <summary>The text form of a NIC's MAC address: six hex pairs separated by ':' (or '-'), unicast.</summary>
public static class MacText
{
    /// <summary>The canonical form (lower case, ':'), or an error that says what is wrong.</summary>
    public static bool TryNormalize(string text, out string normalized, out string error)
    {
        normalized = "";
        string[] parts = text.Split(':', '-');
        var bytes = new byte[6];
        if (parts.Length != 6 || parts.Any(p => p.Length != 2)
            || !parts.Select((p, i) => byte.TryParse(p, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out bytes[i])).All(ok => ok))
        {
            error = $"invalid MAC address '{text}' (expected xx:xx:xx:xx:xx:xx)";
            return false;
        }
        if ((bytes[0] & 1) != 0)
        {
            error = $"MAC address '{text}' is a multicast address";
            return false;
        }
        normalized = string.Join(':', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
        error = "";
        return true;
    }
}
