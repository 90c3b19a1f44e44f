using System.Globalization;
using System.Text;

namespace Kiln.Virtio.Net;

/// <summary>A 48-bit Ethernet address.</summary>
public readonly record struct MacAddress(byte A, byte B, byte C, byte D, byte E, byte F)
{
    public void CopyTo(Span<byte> destination)
    {
        destination[0] = A; destination[1] = B; destination[2] = C;
        destination[3] = D; destination[4] = E; destination[5] = F;
    }

    public bool IsMulticast => (A & 1) != 0;

    public override string ToString() => $"{A:x2}:{B:x2}:{C:x2}:{D:x2}:{E:x2}:{F:x2}";

    /// <summary>Parses "xx:xx:xx:xx:xx:xx" (or '-' separated); multicast addresses are refused.</summary>
    public static MacAddress Parse(string text)
    {
        string[] parts = text.Split(':', '-');
        var b = new byte[6];
        if (parts.Length != 6 || parts.Any(p => p.Length != 2)
            || !parts.Select((p, i) => byte.TryParse(p, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out b[i])).All(ok => ok))
            throw new FormatException($"invalid MAC address '{text}' (expected xx:xx:xx:xx:xx:xx)");
        var mac = new MacAddress(b[0], b[1], b[2], b[3], b[4], b[5]);
        if (mac.IsMulticast)
            throw new FormatException($"MAC address '{text}' is a multicast address");
        return mac;
    }

    /// <summary>A stable, locally administered unicast address (02:4b:...) derived from a name (FNV-1a), so a VM keeps
    /// its MAC across runs on the same tap.</summary>
    public static MacAddress FromName(string name)
    {
        uint h = 2166136261;
        foreach (byte c in Encoding.UTF8.GetBytes(name))
            h = (h ^ c) * 16777619;
        return new MacAddress(0x02, 0x4b, (byte)(h >> 24), (byte)(h >> 16), (byte)(h >> 8), (byte)h);
    }
}
