using System.Security.Cryptography;
using System.Text;

namespace Kiln.Vmm.Migration;

/// <summary>The handshake that opens a migration stream: both ends prove they hold the one-time token the daemons
/// agreed on, without sending it. The destination sends a magic and a nonce; the source answers with its nonce and
/// HMAC-SHA256(token, "src" | both nonces | binding); the destination checks it and answers with the "dst" MAC,
/// which the source checks. With TLS the binding is the SHA-256 of the destination's certificate as each side sees
/// it, so a relay with another certificate cannot reuse the MACs; the source therefore does not need to trust the
/// certificate by a CA.</summary>
internal static class MigrationAuth
{
    private static readonly byte[] Magic = "KILNMIG1"u8.ToArray();
    private const int NonceBytes = 32;
    private const int MacBytes = 32;

    public static void AsDestination(MigrationStream s, string token, byte[] binding)
    {
        byte[] nonceD = RandomNumberGenerator.GetBytes(NonceBytes);
        s.Write(Magic);
        s.Write(nonceD);
        s.Flush();
        var answer = new byte[NonceBytes + MacBytes];
        s.ReadExactly(answer);
        byte[] nonceS = answer[..NonceBytes];
        if (!CryptographicOperations.FixedTimeEquals(answer.AsSpan(NonceBytes), Mac(token, "src", nonceD, nonceS, binding)))
        {
            s.Write("NO"u8);
            s.Flush();
            throw new MigrationException("the migration source did not prove the token (wrong token, or a relay)");
        }
        s.Write("OK"u8);
        s.Write(Mac(token, "dst", nonceD, nonceS, binding));
        s.Flush();
    }

    public static void AsSource(MigrationStream s, string token, byte[] binding)
    {
        var magic = new byte[Magic.Length];
        s.ReadExactly(magic);
        if (!magic.AsSpan().SequenceEqual(Magic))
            throw new MigrationException("the destination is not a Kiln VMM waiting for a migration");
        byte[] nonceD = new byte[NonceBytes];
        s.ReadExactly(nonceD);
        byte[] nonceS = RandomNumberGenerator.GetBytes(NonceBytes);
        s.Write(nonceS);
        s.Write(Mac(token, "src", nonceD, nonceS, binding));
        s.Flush();
        var verdict = new byte[2];
        s.ReadExactly(verdict);
        if (!verdict.AsSpan().SequenceEqual("OK"u8))
            throw new MigrationException("the destination refused the migration token");
        var mac = new byte[MacBytes];
        s.ReadExactly(mac);
        if (!CryptographicOperations.FixedTimeEquals(mac, Mac(token, "dst", nonceD, nonceS, binding)))
            throw new MigrationException("the destination did not prove the token (wrong token, or a relay)");
    }

    private static byte[] Mac(string token, string role, byte[] nonceD, byte[] nonceS, byte[] binding)
    {
        byte[] message = [.. Encoding.ASCII.GetBytes(role), .. nonceD, .. nonceS, .. binding];
        return HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), message);
    }
}
