using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Kiln.Contracts.Control;

namespace Kiln.Daemon;

/// <summary>The daemon end of a VMM's control socket (protocol: <see cref="ControlRequest"/>).</summary>
public static class ControlClient
{
    public static Socket Connect(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one request on a fresh connection and returns the response.</summary>
    public static async Task<ControlResponse> RequestAsync(string socketPath, string command, TimeSpan timeout)
    {
        using var socket = Connect(socketPath);
        using var cts = new CancellationTokenSource(timeout);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var reader = new StreamReader(stream, Encoding.UTF8);
        return await SendAsync(stream, reader, new ControlRequest { Command = command }, cts.Token);
    }

    public static async Task<ControlResponse> SendAsync(Stream stream, StreamReader reader, ControlRequest request, CancellationToken cancel)
    {
        byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(request, ControlJsonContext.Default.ControlRequest), (byte)'\n'];
        await stream.WriteAsync(line, cancel);
        string? reply = await reader.ReadLineAsync(cancel)
            ?? throw new IOException("the VMM closed its control socket");
        return JsonSerializer.Deserialize(reply, ControlJsonContext.Default.ControlResponse)
            ?? throw new IOException("the VMM sent an empty response");
    }
}
