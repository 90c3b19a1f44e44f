using System.Net;
using System.Net.Sockets;
using Kiln.Vmm.Migration;

namespace Kiln.Tests.Vmm.Migration;

/// <summary>The token handshake over a real loopback connection: both ends must hold the same token and see the
/// same channel binding; nothing of the token crosses the wire.</summary>
public sealed class MigrationAuthTests
{
    private static (Exception? Source, Exception? Destination) Handshake(string sourceToken, string destToken,
        byte[]? sourceBinding = null, byte[]? destBinding = null)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        Exception? destError = null;
        var dest = Task.Run(() =>
        {
            using var client = listener.AcceptTcpClient();
            using var s = new MigrationStream(client.GetStream());
            try
            {
                MigrationAuth.AsDestination(s, destToken, destBinding ?? []);
            }
            catch (Exception e)
            {
                destError = e;
            }
        });
        Exception? sourceError = null;
        using (var client = new TcpClient())
        {
            client.Connect(IPAddress.Loopback, port);
            using var s = new MigrationStream(client.GetStream());
            try
            {
                MigrationAuth.AsSource(s, sourceToken, sourceBinding ?? []);
            }
            catch (Exception e)
            {
                sourceError = e;
            }
        }
        dest.Wait(TimeSpan.FromSeconds(10));
        return (sourceError, destError);
    }

    [Fact]
    public void SameTokenPasses()
    {
        var (s, d) = Handshake("tok", "tok");
        Assert.Null(s);
        Assert.Null(d);
    }

    [Fact]
    public void WrongTokenIsRefusedOnBothSides()
    {
        var (s, d) = Handshake("guess", "tok");
        Assert.IsType<MigrationException>(s);
        Assert.Contains("refused", s!.Message);
        Assert.IsType<MigrationException>(d);
    }

    [Fact]
    public void DifferentTlsCertificatesAreRefused()
    {
        var (s, d) = Handshake("tok", "tok", [1, 2, 3], [1, 2, 4]);
        Assert.IsType<MigrationException>(s);
        Assert.IsType<MigrationException>(d);
    }

    [Fact]
    public async Task SomethingElseThanAVmmIsRecognised()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(() =>
        {
            using var c = listener.AcceptTcpClient();
            c.GetStream().Write("HTTP/1.1 400 Bad Request\r\n\r\n"u8);
            Thread.Sleep(200);
        });
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, port);
        using var s = new MigrationStream(client.GetStream());
        var e = Assert.Throws<MigrationException>(() => MigrationAuth.AsSource(s, "tok", []));
        Assert.Contains("not a Kiln VMM", e.Message);
        await server;
    }

    [Fact]
    public void OversizedFramesAndAbortsAreReported()
    {
        var big = new MemoryStream([(byte)MigrationFrame.Pages, 0xFF, 0xFF, 0xFF, 0xFF]);
        var e = Assert.Throws<MigrationException>(() => new MigrationStream(big).ReadFrame());
        Assert.Contains("limit", e.Message);
        var abort = new MemoryStream([(byte)MigrationFrame.Abort, 3, 0, 0, 0, (byte)'b', (byte)'y', (byte)'e']);
        Assert.Equal("the peer aborted: bye", Assert.Throws<MigrationException>(() => new MigrationStream(abort).ReadFrame()).Message);
        var cut = new MemoryStream([(byte)MigrationFrame.State, 10, 0, 0, 0, 1, 2]);
        Assert.Contains("closed", Assert.Throws<MigrationException>(() => new MigrationStream(cut).ReadFrame()).Message);
    }
}
