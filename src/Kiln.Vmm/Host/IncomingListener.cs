using System.Security.Cryptography.X509Certificates;
using Kiln.Contracts.Spec;
using Kiln.Vmm.Migration;

namespace Kiln.Vmm.Host;

/// <summary>An incoming migration's listening side, set up from the spec before the runner starts, so the printed
/// port is ready for the source: the token (the launch's, the spec's token file, or $KILN_MIGRATION_TOKEN) and the
/// optional TLS certificate.</summary>
internal static class IncomingListener
{
    public const string TokenVariable = "KILN_MIGRATION_TOKEN";

    public static IncomingMigration Listen(IncomingSource source, string? launchToken)
    {
        MigrationEndpoint endpoint;
        try
        {
            endpoint = MigrationEndpoint.Parse(source.Listen);
        }
        catch (FormatException e)
        {
            throw new VmSpecException("source.incoming.listen", e.Message);
        }
        string token = (launchToken ?? (source.TokenFile is not null ? ReadToken(source.TokenFile)
            : Environment.GetEnvironmentVariable(TokenVariable)) ?? "").Trim();
        if (token.Length == 0)
            throw new VmSpecException("source.incoming.tokenFile", $"--incoming needs a token: --incoming-token-file PATH or ${TokenVariable}");
        X509Certificate2? certificate = null;
        if (source.TlsCert is not null)
        {
            try
            {
                using var pem = X509Certificate2.CreateFromPemFile(source.TlsCert, source.TlsKey);
                // SslStream on Linux wants a certificate whose key is not ephemeral.
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException)
            {
                throw new VmSpecException("source.incoming.tlsCert", e.Message);
            }
        }
        var incoming = new IncomingMigration(endpoint, token, certificate) { AcceptTimeout = TimeSpan.FromSeconds(source.TimeoutSeconds) };
        KilnLog.Info($"waiting for a migration on {endpoint with { Port = incoming.Port }}");
        return incoming;
    }

    private static string ReadToken(string file)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmSpecException("source.incoming.tokenFile", $"cannot read the token: {e.Message}");
        }
    }
}
