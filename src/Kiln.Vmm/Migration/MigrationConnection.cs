using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Kiln.Vmm.Migration;

/// <summary>Opens an authenticated migration stream: TCP, optionally TLS, then <see cref="MigrationAuth"/>.
/// Socket timeouts make a cut link (no RST, e.g. a downed interface) an error instead of a hang.</summary>
internal static class MigrationConnection
{
    public static MigrationStream Connect(MigrationEndpoint endpoint, string token, bool tls, TimeSpan ioTimeout,
        CancellationToken cancel)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel))
            {
                timeout.CancelAfter(ioTimeout);
                try
                {
                    socket.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    throw new MigrationException($"no answer from {endpoint} within {ioTimeout.TotalSeconds:0} s");
                }
            }
            SetTimeouts(socket, ioTimeout);
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            byte[] binding = [];
            if (tls)
            {
                // Any certificate is accepted here: the token MAC is bound to the certificate's hash (see
                // MigrationAuth), which is what authenticates the destination.
                var ssl = new SslStream(stream, false, (_, _, _, _) => true);
                ssl.AuthenticateAsClient(new SslClientAuthenticationOptions
                {
                    TargetHost = endpoint.Host, EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                });
                binding = ssl.RemoteCertificate?.GetCertHash(System.Security.Cryptography.HashAlgorithmName.SHA256) ?? [];
                stream = ssl;
            }
            var s = new MigrationStream(stream);
            MigrationAuth.AsSource(s, token, binding);
            return s;
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException)
        {
            socket.Dispose();
            throw new MigrationException($"cannot open the migration stream to {endpoint}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Waits for one source on <paramref name="listener"/>, up to <paramref name="acceptTimeout"/>.</summary>
    public static MigrationStream Accept(Socket listener, string token, X509Certificate2? certificate,
        TimeSpan acceptTimeout, TimeSpan ioTimeout)
    {
        Socket socket;
        try
        {
            using var timeout = new CancellationTokenSource(acceptTimeout);
            socket = listener.AcceptAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            throw new MigrationException($"no migration source connected within {acceptTimeout.TotalSeconds:0} s");
        }
        try
        {
            socket.NoDelay = true;
            SetTimeouts(socket, ioTimeout);
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            byte[] binding = [];
            if (certificate is not null)
            {
                var ssl = new SslStream(stream, false);
                ssl.AuthenticateAsServer(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificate, EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                });
                binding = certificate.GetCertHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                stream = ssl;
            }
            var s = new MigrationStream(stream);
            MigrationAuth.AsDestination(s, token, binding);
            return s;
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException)
        {
            socket.Dispose();
            throw new MigrationException($"migration handshake failed: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void SetTimeouts(Socket socket, TimeSpan timeout)
    {
        socket.SendTimeout = (int)timeout.TotalMilliseconds;
        socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        socket.SendBufferSize = 4 << 20;
        socket.ReceiveBufferSize = 4 << 20;
    }
}
