using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Kiln.GuestTests.Support;

/// <summary>A `kiln run` child process (optionally inside a network namespace) whose stdout (the guest console)
/// and stderr are collected while it runs, plus a client for its control socket.</summary>
public sealed class VmmProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    public VmmProcess(string? netns, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(netns is null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        };
        if (netns is not null)
            foreach (var a in new[] { "netns", "exec", netns, "dotnet" })
                psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(Kiln.CliDll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
            psi.Environment[k] = v;
        _process = Process.Start(psi)!;
        _process.StandardInput.Close();
        // The console is read as it comes, not by lines: a guest paused mid-line (a migration's switch-over) must
        // show the bytes it did print, or a counter split across two VMMs loses the number that straddles them.
        _stdoutPump = Task.Run(PumpStdout);
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.Append(e.Data).Append('\n'); };
        _process.BeginErrorReadLine();
    }

    private readonly Task _stdoutPump;

    private async Task PumpStdout()
    {
        var buffer = new char[4096];
        int n;
        while ((n = await _process.StandardOutput.ReadAsync(buffer)) > 0)
        {
            string chunk = new string(buffer, 0, n).Replace("\r", "", StringComparison.Ordinal);
            lock (_stdout)
                _stdout.Append(chunk);
        }
    }

    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public int Pid => _process.Id;

    /// <summary>Waits until <paramref name="condition"/> holds for (stdout, stderr); false on timeout.</summary>
    public bool WaitFor(Func<string, string, bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (condition(Stdout, Stderr))
                return true;
            if (_process.HasExited)
            {
                _process.WaitForExit(); // drain the output
                _stdoutPump.Wait(TimeSpan.FromSeconds(10));
                return condition(Stdout, Stderr);
            }
            Thread.Sleep(50);
        }
        return false;
    }

    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            return false;
        _process.WaitForExit();
        _stdoutPump.Wait(TimeSpan.FromSeconds(10));
        return true;
    }

    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
            _stdoutPump.Wait(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Sends one control request and returns its response line, parsed.</summary>
    public static JsonElement Control(string socketPath, string requestJson)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        using var stream = new NetworkStream(socket);
        stream.Write(Encoding.UTF8.GetBytes(requestJson + "\n"));
        using var reader = new StreamReader(stream);
        return JsonDocument.Parse(reader.ReadLine() ?? "{}").RootElement.Clone();
    }

    /// <summary>A watch connection: events as parsed lines.</summary>
    public sealed class Watch : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly StreamReader _reader;

        public Watch(string socketPath)
        {
            _socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            var stream = new NetworkStream(_socket);
            stream.Write("{\"cmd\":\"watch\"}\n"u8);
            _reader = new StreamReader(stream);
            _reader.ReadLine();
        }

        /// <summary>Reads events until one named <paramref name="names"/> arrives (null at end of stream or timeout).</summary>
        public JsonElement? Until(TimeSpan timeout, params string[] names)
        {
            _socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            try
            {
                while (_reader.ReadLine() is { } line)
                {
                    var e = JsonDocument.Parse(line).RootElement.Clone();
                    Events.Add(e);
                    if (names.Contains(e.GetProperty("event").GetString()))
                        return e;
                }
            }
            catch (IOException)
            {
            }
            return null;
        }

        public List<JsonElement> Events { get; } = [];

        public void Dispose()
        {
            _reader.Dispose();
            _socket.Dispose();
        }
    }

    public void Dispose() => Kill();
}
