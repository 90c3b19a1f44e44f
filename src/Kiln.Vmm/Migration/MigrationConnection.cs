using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Kiln.Vmm.Migration;

/// <summary>Opens an authenticated migration stream: TCP, optionally TLS, then <see cref="MigrationAuth"/>.
/// Socket timeouts make a cut link (no RST, e.g. a downed interface) an error instead of a hang.</summary>
internal static class MigrationConnection
{
    public static MigrationStream Connect(MigrationEndpoint endpoint, string token, bool tls, TimeSpan ioTimeout,
        CancellationToken cancel)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
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
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new MigrationException($"cannot open the migration stream to {endpoint}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return Handshake(socket, ioTimeout, $"cannot open the migration stream to {endpoint}", stream =>
        {
            if (!tls)
                return (stream, []);
            // Any certificate is accepted here: the token MAC is bound to the certificate's hash (see
            // MigrationAuth), which is what authenticates the destination.
            var ssl = new SslStream(stream, false, (_, _, _, _) => true);
            ssl.AuthenticateAsClient(new SslClientAuthenticationOptions
            {
                TargetHost = endpoint.Host, EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            });
            return (ssl, ssl.RemoteCertificate?.GetCertHash(HashAlgorithmName.SHA256) ?? []);
        }, (s, binding) => MigrationAuth.AsSource(s, token, binding));
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
        return Handshake(socket, ioTimeout, "migration handshake failed", stream =>
        {
            if (certificate is null)
                return (stream, []);
            var ssl = new SslStream(stream, false);
            ssl.AuthenticateAsServer(new SslServerAuthenticationOptions
            {
                ServerCertificate = certificate, EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            });
            return (ssl, certificate.GetCertHash(HashAlgorithmName.SHA256));
        }, (s, binding) => MigrationAuth.AsDestination(s, token, binding));
    }

    /// <summary>What both ends do on a connected socket: timeouts and buffers, the optional TLS layer
    /// (<paramref name="secure"/> returns the stream to use and the certificate hash the token MAC binds to), then the
    /// token exchange. Any failure closes the socket and is one <see cref="MigrationException"/> line.</summary>
    private static MigrationStream Handshake(Socket socket, TimeSpan ioTimeout, string failure,
        Func<Stream, (Stream Stream, byte[] Binding)> secure, Action<MigrationStream, byte[]> authenticate)
    {
        try
        {
            socket.NoDelay = true;
            SetTimeouts(socket, ioTimeout);
            var (stream, binding) = secure(new NetworkStream(socket, ownsSocket: true));
            var s = new MigrationStream(stream);
            authenticate(s, binding);
            return s;
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException)
        {
            socket.Dispose();
            throw new MigrationException($"{failure}: {e.Message}", e);
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
