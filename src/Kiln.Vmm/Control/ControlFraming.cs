using System.Net.Sockets;
using System.Text.Json;
using Kiln.Contracts.Control;

namespace Kiln.Vmm.Control;

/// <summary>The control protocol's framing: one JSON request per line in, one JSON response line out.</summary>
internal static class ControlFraming
{
    /// <summary>Parses one request line; a malformed one is the error response to send instead.</summary>
    public static (ControlRequest? Request, ControlResponse? Error) Parse(string line)
    {
        try
        {
            return (JsonSerializer.Deserialize(line, ControlJsonContext.Default.ControlRequest), null);
        }
        catch (JsonException e)
        {
            return (null, new ControlResponse { Error = $"malformed request: {e.Message}" });
        }
    }

    public static void Send(Socket socket, ControlResponse response)
    {
        byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(response, ControlJsonContext.Default.ControlResponse), (byte)'\n'];
        socket.Send(line);
    }

    /// <summary>Shuts a client's connection down and closes it, whatever state it is in.</summary>
    public static void Close(Socket s)
    {
        try
        {
            s.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        s.Dispose();
    }
}
