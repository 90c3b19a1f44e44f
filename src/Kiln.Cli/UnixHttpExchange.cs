using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Kiln.Cli;

/// <summary>One HTTP/1.1 request and its response over the daemon's Unix socket, written by hand. HttpClient's
/// handler pipeline costs a short-lived CLI process more start-up time (assembly loading and first-call
/// compilation) than the daemon takes to answer, and every verb but the streaming ones (events, console) is one
/// request; so those go through this instead. The daemon (Kestrel) answers with Content-Length or chunked bodies;
/// `Connection: close` makes the end of the body the end of the stream as well.</summary>
public static class UnixHttpExchange
{
    public readonly record struct Response(int Status, string Reason, string Body);

    public static async Task<Response> SendAsync(string socketPath, string method, string path, string? contentType,
        byte[]? body, string? authorization, CancellationToken cancel)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancel);
        }
        catch (SocketException e)
        {
            throw new DaemonClientException($"cannot connect to the daemon at {socketPath}: {e.Message} (is 'kiln daemon' running?)");
        }
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if (authorization is not null)
            head.Append(CultureInfo.InvariantCulture, $"Authorization: {authorization}\r\n");
        if (contentType is not null)
            head.Append(CultureInfo.InvariantCulture, $"Content-Type: {contentType}\r\n");
        head.Append(CultureInfo.InvariantCulture, $"Content-Length: {body?.Length ?? 0}\r\n\r\n");
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), cancel);
        if (body is { Length: > 0 })
            await stream.WriteAsync(body, cancel);
        var all = new MemoryStream();
        await stream.CopyToAsync(all, cancel);
        return Parse(all.GetBuffer().AsSpan(0, (int)all.Length));
    }

    /// <summary>Splits a complete response into status, reason and the (de-chunked) body.</summary>
    public static Response Parse(ReadOnlySpan<byte> raw)
    {
        int headEnd = raw.IndexOf("\r\n\r\n"u8);
        if (headEnd < 0)
            throw new DaemonClientException("the daemon sent an incomplete HTTP response");
        string[] lines = Encoding.ASCII.GetString(raw[..headEnd]).Split("\r\n");
        string[] status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) ||
            !int.TryParse(status[1], NumberStyles.None, CultureInfo.InvariantCulture, out int code))
            throw new DaemonClientException($"the daemon sent a malformed status line: '{lines[0]}'");
        bool chunked = false;
        int? length = null;
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            string name = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
            else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) &&
                     int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n))
                length = n;
        }
        var rest = raw[(headEnd + 4)..];
        byte[] body = chunked ? Dechunk(rest) : rest[..Math.Min(length ?? rest.Length, rest.Length)].ToArray();
        return new Response(code, status.Length > 2 ? status[2] : "", Encoding.UTF8.GetString(body));
    }

    private static byte[] Dechunk(ReadOnlySpan<byte> data)
    {
        var body = new MemoryStream();
        while (true)
        {
            int eol = data.IndexOf("\r\n"u8);
            if (eol < 0)
                throw new DaemonClientException("the daemon sent a truncated chunked body");
            string sizeText = Encoding.ASCII.GetString(data[..eol]).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int size) || size < 0)
                throw new DaemonClientException($"the daemon sent a malformed chunk size '{sizeText}'");
            data = data[(eol + 2)..];
            if (size == 0)
                return body.ToArray();
            if (data.Length < size + 2)
                throw new DaemonClientException("the daemon sent a truncated chunk");
            body.Write(data[..size]);
            data = data[(size + 2)..];
        }
    }
}
