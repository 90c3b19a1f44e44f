using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Kiln.Daemon;

namespace Kiln.Cli;

/// <summary>A failure the daemon reported (or the daemon being unreachable): one line for the user.</summary>
public sealed class DaemonClientException(string message) : KilnException(message);

/// <summary>Talks to `kiln daemon`: `unix:///path` (default /run/kiln/kiln.sock, or $KILN_DEFAULT_URI) or
/// `tcp://host:port` (TLS; the bearer token from $KILN_TOKEN or the file $KILN_TOKEN_FILE; the daemon's certificate
/// is checked against the system roots, or $KILN_TLS_CA, or not at all with KILN_TLS_INSECURE=1).</summary>
public sealed class DaemonClient : IDisposable
{
    public const string DefaultUri = "unix:///run/kiln/kiln.sock";
    private readonly SocketsHttpHandler _handler;
    private readonly HttpClient _http;
    private readonly Uri _base;
    private readonly string _display;
    private readonly string? _token;
    private readonly string? _unixPath;

    public DaemonClient(string? uri)
    {
        uri ??= Environment.GetEnvironmentVariable("KILN_DEFAULT_URI") is { Length: > 0 } env ? env : DefaultUri;
        _display = uri;
        _handler = new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) };
        if (uri.StartsWith("unix://", StringComparison.Ordinal))
        {
            string path = uri["unix://".Length..];
            if (path.Length == 0)
                throw new UsageException($"-c: no socket path in '{uri}'");
            _unixPath = path;
            _handler.ConnectCallback = async (_, cancel) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancel);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    throw new DaemonClientException($"cannot connect to the daemon at {path}: {e.Message} (is 'kiln daemon' running?)");
                }
                return new NetworkStream(socket, ownsSocket: true);
            };
            _base = new Uri("http://localhost/");
        }
        else if (uri.StartsWith("tcp://", StringComparison.Ordinal))
        {
            _base = new Uri("https://" + uri["tcp://".Length..].TrimEnd('/') + "/");
            _token = Environment.GetEnvironmentVariable("KILN_TOKEN");
            if (_token is null && Environment.GetEnvironmentVariable("KILN_TOKEN_FILE") is { Length: > 0 } tokenFile)
                _token = File.ReadAllText(tokenFile).Trim();
            _handler.SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = ValidateCertificate };
        }
        else
            throw new UsageException($"-c: '{uri}' is not unix:///PATH or tcp://HOST:PORT");
        _http = new HttpClient(_handler, disposeHandler: false) { BaseAddress = _base, Timeout = Timeout.InfiniteTimeSpan };
        if (_token is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _token);
    }

    private static bool ValidateCertificate(object sender, X509Certificate? cert, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None || Environment.GetEnvironmentVariable("KILN_TLS_INSECURE") == "1")
            return true;
        if (cert is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 ||
            Environment.GetEnvironmentVariable("KILN_TLS_CA") is not { Length: > 0 } caFile)
            return false;
        // The certificate alone (CreateFromPemFile would look for a private key in the same file and throw).
        using var ca = X509Certificate2.CreateFromPem(File.ReadAllText(caFile));
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.Add(ca);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return custom.Build(new X509Certificate2(cert));
    }

    public async Task<T> SendAsync<T>(HttpMethod method, string path, JsonTypeInfo<T> type, HttpContent? body = null, TimeSpan? timeout = null)
    {
        string text = await SendRawAsync(method, path, body, timeout);
        try
        {
            return JsonSerializer.Deserialize(text, type) ?? throw new DaemonClientException("the daemon sent an empty response");
        }
        catch (JsonException e)
        {
            throw new DaemonClientException($"the daemon sent malformed JSON: {e.Message}");
        }
    }

    public async Task<string> SendRawAsync(HttpMethod method, string path, HttpContent? body = null, TimeSpan? timeout = null)
    {
        if (_unixPath is not null)
            return await SendOverUnixSocketAsync(method, path, body, timeout);
        using var request = new HttpRequestMessage(method, path) { Content = body };
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cts.Token);
        }
        catch (HttpRequestException e)
        {
            throw new DaemonClientException(e.InnerException is DaemonClientException inner ? inner.Message
                : e.InnerException is System.Security.Authentication.AuthenticationException
                    ? $"cannot reach the daemon at {_display}: TLS failed (is its certificate trusted? $KILN_TLS_CA names a CA file)"
                    : $"cannot reach the daemon at {_display}: {e.Message}");
        }
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync(cts.Token);
            if (!response.IsSuccessStatusCode)
            {
                string message = text;
                try
                {
                    message = JsonSerializer.Deserialize(text, DaemonJsonContext.Default.ApiError)?.Error ?? text;
                }
                catch (JsonException)
                {
                }
                throw new DaemonClientException(message.Length == 0 ? $"the daemon answered {(int)response.StatusCode} {response.ReasonPhrase}" : message);
            }
            return text;
        }
    }

    /// <summary>The same as the HttpClient path, by hand (see <see cref="UnixHttpExchange"/>): a CLI verb's one request
    /// without the start-up cost of HttpClient's handler pipeline.</summary>
    private async Task<string> SendOverUnixSocketAsync(HttpMethod method, string path, HttpContent? body, TimeSpan? timeout)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        byte[]? bytes = body is null ? null : await body.ReadAsByteArrayAsync(cts.Token);
        UnixHttpExchange.Response response;
        try
        {
            response = await UnixHttpExchange.SendAsync(_unixPath!, method.Method, path, body?.Headers.ContentType?.ToString(), bytes,
                _token is null ? null : "Bearer " + _token, cts.Token);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw new DaemonClientException($"cannot reach the daemon at {_display}: {e.Message}");
        }
        catch (OperationCanceledException)
        {
            throw new DaemonClientException($"the daemon at {_display} did not answer in time");
        }
        if (response.Status is < 200 or > 299)
            throw new DaemonClientException(ErrorMessage(response.Body, response.Status, response.Reason));
        return response.Body;
    }

    private static string ErrorMessage(string text, int status, string? reason)
    {
        string message = text;
        try
        {
            message = JsonSerializer.Deserialize(text, DaemonJsonContext.Default.ApiError)?.Error ?? text;
        }
        catch (JsonException)
        {
        }
        return message.Length == 0 ? $"the daemon answered {status} {reason}" : message;
    }

    /// <summary>An open streaming response (events).</summary>
    public async Task<Stream> OpenStreamAsync(string path, CancellationToken cancel)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cancel);
        }
        catch (HttpRequestException e)
        {
            throw new DaemonClientException(e.InnerException is DaemonClientException inner ? inner.Message
                : $"cannot reach the daemon at {_display}: {e.Message}");
        }
        if (!response.IsSuccessStatusCode)
            throw new DaemonClientException(await response.Content.ReadAsStringAsync(cancel));
        return await response.Content.ReadAsStreamAsync(cancel);
    }

    /// <summary>A POST whose answer is a stream (migration progress lines); an error status becomes one message.</summary>
    public async Task<Stream> PostStreamAsync(string path, HttpContent body, CancellationToken cancel)
    {
        HttpResponseMessage response;
        try
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body };
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        }
        catch (HttpRequestException e)
        {
            throw new DaemonClientException(e.InnerException is DaemonClientException inner ? inner.Message
                : $"cannot reach the daemon at {_display}: {e.Message}");
        }
        if (!response.IsSuccessStatusCode)
        {
            string text = await response.Content.ReadAsStringAsync(cancel);
            string message = text;
            try
            {
                message = JsonSerializer.Deserialize(text, DaemonJsonContext.Default.ApiError)?.Error ?? text;
            }
            catch (JsonException)
            {
            }
            response.Dispose();
            throw new DaemonClientException(message);
        }
        return await response.Content.ReadAsStreamAsync(cancel);
    }

    public async Task<ClientWebSocket> ConnectWebSocketAsync(string path, CancellationToken cancel)
    {
        var ws = new ClientWebSocket();
        if (_token is not null)
            ws.Options.SetRequestHeader("Authorization", "Bearer " + _token);
        var uri = new Uri((_base.Scheme == "https" ? "wss://" : "ws://") + _base.Authority + path);
        try
        {
            await ws.ConnectAsync(uri, new HttpMessageInvoker(_handler, disposeHandler: false), cancel);
        }
        catch (WebSocketException e)
        {
            ws.Dispose();
            throw new DaemonClientException(e.InnerException is DaemonClientException inner ? inner.Message : $"console: {e.Message}");
        }
        return ws;
    }

    public static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    public void Dispose()
    {
        _http.Dispose();
        _handler.Dispose();
    }
}
