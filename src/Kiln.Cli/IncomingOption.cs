using System.Security.Cryptography.X509Certificates;
using Kiln.Vmm;
using Kiln.Vmm.Migration;

namespace Kiln.Cli;

/// <summary>`kiln run --incoming tcp:ADDR:PORT`: reads the token (file or $KILN_MIGRATION_TOKEN) and the optional
/// TLS certificate, and starts listening before the runner starts, so the printed port is ready for the source.</summary>
internal static class IncomingOption
{
    public const string TokenVariable = "KILN_MIGRATION_TOKEN";

    public static IncomingMigration Listen(string address, string? tokenFile, string? certFile, string? keyFile, int timeoutSeconds)
    {
        MigrationEndpoint endpoint;
        try
        {
            endpoint = MigrationEndpoint.Parse(address);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--incoming: {e.Message}");
        }
        string token = (tokenFile is not null ? File.ReadAllText(tokenFile) : Environment.GetEnvironmentVariable(TokenVariable) ?? "").Trim();
        if (token.Length == 0)
            throw new UsageException($"--incoming needs a token: --incoming-token-file PATH or ${TokenVariable}");
        if ((certFile is null) != (keyFile is null))
            throw new UsageException("--incoming-tls-cert and --incoming-tls-key go together");
        X509Certificate2? certificate = null;
        if (certFile is not null)
        {
            try
            {
                using var pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
                // SslStream on Linux wants a certificate whose key is not ephemeral.
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                throw new UsageException($"--incoming-tls-cert: {e.Message}");
            }
        }
        var incoming = new IncomingMigration(endpoint, token, certificate) { AcceptTimeout = TimeSpan.FromSeconds(timeoutSeconds) };
        KilnLog.Info($"waiting for a migration on {endpoint with { Port = incoming.Port }}");
        return incoming;
    }
}
