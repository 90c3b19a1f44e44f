using System.Net.Sockets;
using System.Text;

namespace Kiln.GuestTests.Support;

/// <summary>Types into a VMM's console through its control socket (the <c>console</c> command); what the guest prints
/// is read from the VMM's stdout, where a controlled VMM echoes its console.</summary>
public sealed class ControlConsole : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);

    public ControlConsole(string socketPath)
    {
        _socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        _socket.Send("{\"cmd\":\"console\"}\n"u8);
        // The answer first: the server reads the request with a buffered reader, so bytes typed before it switched the
        // connection to console mode would be lost in that buffer.
        _socket.ReceiveTimeout = 10_000;
        var one = new byte[1];
        while (_socket.Receive(one) == 1 && one[0] != (byte)'\n')
        {
        }
        _socket.ReceiveTimeout = 0;
        // Output comes back on this socket too; drain it so the server never blocks on a full buffer.
        new Thread(() =>
        {
            var sink = new byte[4096];
            try
            {
                while (_socket.Receive(sink) > 0)
                {
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }) { IsBackground = true, Name = "console-drain" }.Start();
    }

    /// <summary>Types one line (a newline is added).</summary>
    public void Line(string text) => _socket.Send(Encoding.ASCII.GetBytes(text + "\n"));

    public void Dispose() => _socket.Dispose();
}
