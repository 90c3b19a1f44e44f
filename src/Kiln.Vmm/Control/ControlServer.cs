using System.Net.Sockets;
using System.Text;
using Kiln.Contracts.Control;

namespace Kiln.Vmm.Control;

/// <summary>The VMM end of the per-VM control socket (protocol: <see cref="ControlRequest"/>): accepts clients, reads
/// their request lines (<see cref="ControlFraming"/>), answers each through the command table
/// (<see cref="ControlCommands"/>), and hands a connection that asked for <c>console</c> to the
/// <see cref="ConsoleHub"/> and one that asked to <c>watch</c> to the <see cref="WatchHub"/>.</summary>
public sealed class ControlServer : IDisposable
{
    private readonly string _path;
    private readonly string? _name;
    private readonly Socket _listener;
    private readonly ConsoleHub _console;
    private readonly WatchHub _watch = new();
    private ControlCommands? _commands;
    private VmmRunner? _runner;
    private int _closed;

    public ControlServer(string path, string? name, bool echoToStdout)
    {
        _path = path;
        _name = name;
        _console = new ConsoleHub(echoToStdout);
        if (File.Exists(path))
            File.Delete(path); // a stale socket of a VMM that died
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(16);
    }

    /// <summary>The descriptor the runner writes guest console output to.</summary>
    public int OutputFd => _console.OutputFd;

    /// <summary>The descriptor the runner reads console input from.</summary>
    public int InputFd => _console.InputFd;

    public void Start(VmmRunner runner)
    {
        _runner = runner;
        _commands = new ControlCommands(runner, _name, _console, _watch);
        _console.Start();
        new Thread(AcceptLoop) { Name = "control-accept", IsBackground = true }.Start();
    }

    /// <summary>Sends an event to every watcher (e.g. <c>incoming-complete</c> once a migrated-in guest runs).</summary>
    public void Announce(ControlEvent e) => _watch.Broadcast(e);

    /// <summary>Tells every watcher why the VMM is exiting, then closes the socket and removes its file.</summary>
    public void NotifyExit(MachineExit exit)
    {
        Thread.Sleep(20); // let the console pump hand the last console bytes to attached clients
        _watch.Broadcast(new ControlEvent { Event = "exit", Kind = exit.Kind.ToString(), Code = exit.ExitCode, Message = exit.Message }, isExit: true);
        Dispose();
    }

    private void AcceptLoop()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            new Thread(() => Serve(client)) { Name = "control-client", IsBackground = true }.Start();
        }
    }

    private void Serve(Socket client)
    {
        var stream = new NetworkStream(client, ownsSocket: false);
        var reader = new StreamReader(stream, Encoding.UTF8, false, 4096, leaveOpen: true);
        bool keep = false;
        try
        {
            while (reader.ReadLine() is { } line)
            {
                if (line.Length == 0)
                    continue;
                var (request, malformed) = ControlFraming.Parse(line);
                if (malformed is not null)
                {
                    ControlFraming.Send(client, malformed);
                    continue;
                }
                if (request is null)
                    continue;
                var response = _commands!.Handle(request);
                ControlFraming.Send(client, response);
                if (!response.Ok)
                    continue;
                // Only once the client has its answer: stopping ends the process, which could cut the reply off.
                if (request.Command == "save")
                    _runner!.RequestStop(MachineExit.UserStop($"saved to {request.File}"));
                if (request.Command == "console")
                {
                    keep = true;
                    _console.Attach(client, stream, request.History);
                    return;
                }
                if (request.Command == "watch")
                {
                    keep = _watch.Subscribe(client);
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            if (!keep)
                client.Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
            return;
        _listener.Dispose();
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
        _console.Dispose();
        _watch.Dispose();
    }
}
