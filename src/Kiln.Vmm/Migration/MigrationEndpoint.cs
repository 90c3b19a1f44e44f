using System.Net;

namespace Kiln.Vmm.Migration;

/// <summary>Where a migration stream goes: <c>tcp:HOST:PORT</c> or <c>tcp://HOST:PORT</c> (IPv6 hosts in brackets).</summary>
public sealed record MigrationEndpoint(string Host, int Port)
{
    public static MigrationEndpoint Parse(string text)
    {
        string rest = text.StartsWith("tcp://", StringComparison.Ordinal) ? text[6..]
            : text.StartsWith("tcp:", StringComparison.Ordinal) ? text[4..]
            : throw new FormatException($"'{text}' is not a migration address (tcp:HOST:PORT)");
        int colon = rest.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(rest[(colon + 1)..], out int port) || port is < 0 or > 65535)
            throw new FormatException($"'{text}' is not a migration address (tcp:HOST:PORT)");
        string host = rest[..colon].Trim('[', ']');
        if (host.Length == 0)
            throw new FormatException($"'{text}' has no host");
        return new MigrationEndpoint(host, port);
    }

    /// <summary>The address to listen on: an IP literal, or any address for "*", "0.0.0.0" or a name.</summary>
    public IPEndPoint ListenEndPoint() =>
        new(IPAddress.TryParse(Host, out var ip) ? ip : IPAddress.Any, Port);

    public override string ToString() => Host.Contains(':') ? $"tcp:[{Host}]:{Port}" : $"tcp:{Host}:{Port}";
}
