using System.Net.Sockets;
using System.Text.Json;
using Kiln.Contracts.Control;

namespace Kiln.Vmm.Control;

/// <summary>The control socket's <c>watch</c> connections: every lifecycle event goes to each of them as a JSON line.
/// The exit event is kept, so a watcher that subscribes while the VMM is exiting still learns why.</summary>
internal sealed class WatchHub : IDisposable
{
    private readonly object _lock = new();
    private readonly List<Socket> _watchers = [];
    private byte[]? _exitLine;
    private bool _closed;

    /// <summary>Adds a watcher; false (and the exit line sent to it, if there is one) when the VMM is exiting.</summary>
    public bool Subscribe(Socket client)
    {
        byte[]? missed;
        lock (_lock)
        {
            missed = _exitLine;
            bool keep = missed is null && !_closed;
            if (keep)
            {
                _watchers.Add(client);
                return true;
            }
        }
        // The guest ended between this watcher's request and its subscription (a guest that powers off at once):
        // it still learns why, rather than seeing a bare close it would take for a crash.
        if (missed is not null)
            client.Send(missed);
        return false;
    }

    public void Broadcast(ControlEvent e, bool isExit = false)
    {
        byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(e, ControlJsonContext.Default.ControlEvent), (byte)'\n'];
        Socket[] watchers;
        lock (_lock)
        {
            if (isExit)
                _exitLine = line;
            watchers = [.. _watchers];
        }
        foreach (var w in watchers)
        {
            try
            {
                w.Send(line);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                lock (_lock)
                    _watchers.Remove(w);
                w.Dispose();
            }
        }
    }

    public void Dispose()
    {
        Socket[] all;
        lock (_lock)
        {
            _closed = true;
            all = [.. _watchers];
            _watchers.Clear();
        }
        foreach (var s in all)
            ControlFraming.Close(s);
    }
}
