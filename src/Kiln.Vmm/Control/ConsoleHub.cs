using System.IO.Pipes;
using System.Net.Sockets;

namespace Kiln.Vmm.Control;

/// <summary>The guest console behind the control socket: it owns the pipes the runner writes console output to and
/// reads keystrokes from, and fans the output out to the attached console clients, a 64 KiB history ring and
/// (optionally) stdout, which the daemon points at the domain's log.</summary>
internal sealed class ConsoleHub(bool echoToStdout) : IDisposable
{
    private const int HistoryBytes = 64 << 10;
    private readonly AnonymousPipeServerStream _fromGuest = new(PipeDirection.In);
    private readonly AnonymousPipeServerStream _toGuest = new(PipeDirection.Out);
    private readonly object _lock = new();
    private readonly List<Socket> _clients = [];
    private readonly byte[] _history = new byte[HistoryBytes];
    private long _historyLength;
    private long _bytes;

    /// <summary>The descriptor the runner writes guest console output to.</summary>
    public int OutputFd => (int)_fromGuest.ClientSafePipeHandle.DangerousGetHandle();

    /// <summary>The descriptor the runner reads console input from.</summary>
    public int InputFd => (int)_toGuest.ClientSafePipeHandle.DangerousGetHandle();

    /// <summary>Console bytes the guest has written.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    public void Start() => new Thread(Pump) { Name = "control-console", IsBackground = true }.Start();

    /// <summary>Serves one console client until it disconnects: the recent output first when asked, then the guest's
    /// output to it and its bytes to the guest.</summary>
    public void Attach(Socket client, NetworkStream stream, bool history)
    {
        client.SendTimeout = 2000;
        lock (_lock)
        {
            if (history)
            {
                long start = Math.Max(0, _historyLength - HistoryBytes);
                var replay = new byte[_historyLength - start];
                for (long i = start; i < _historyLength; i++)
                    replay[i - start] = _history[i % HistoryBytes];
                try
                {
                    client.Send(replay);
                }
                catch (SocketException)
                {
                    client.Dispose();
                    return;
                }
            }
            _clients.Add(client);
        }
        var buffer = new byte[1024];
        try
        {
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                _toGuest.Write(buffer, 0, n);
                _toGuest.Flush();
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
        lock (_lock)
            _clients.Remove(client);
        client.Dispose();
    }

    private void Pump()
    {
        var buffer = new byte[8192];
        while (true)
        {
            int n;
            try
            {
                n = _fromGuest.Read(buffer);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return;
            }
            if (n == 0)
                return;
            Interlocked.Add(ref _bytes, n);
            if (echoToStdout)
            {
                try
                {
                    Interop.Libc.WriteAll(1, buffer.AsSpan(0, n));
                }
                catch (Interop.SystemCallException)
                {
                }
            }
            Socket[] clients;
            lock (_lock)
            {
                for (int i = 0; i < n; i++)
                    _history[(_historyLength + i) % HistoryBytes] = buffer[i];
                _historyLength += n;
                clients = [.. _clients];
            }
            foreach (var c in clients)
            {
                try
                {
                    c.Send(buffer.AsSpan(0, n));
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    lock (_lock)
                        _clients.Remove(c);
                    c.Dispose();
                }
            }
        }
    }

    /// <summary>Detaches every client (the VMM is exiting).</summary>
    public void Dispose()
    {
        Socket[] all;
        lock (_lock)
        {
            all = [.. _clients];
            _clients.Clear();
        }
        foreach (var s in all)
            ControlFraming.Close(s);
    }
}
