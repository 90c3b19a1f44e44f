using System.Runtime.InteropServices;
using Kiln.Daemon;

namespace Kiln.Cli;

/// <summary>`kiln daemon`: the domain manager (see Kiln.Daemon and docs/api/openapi.json).</summary>
public static class DaemonCommand
{
    private static readonly CliOptions<DaemonOptions> Options = new CliOptions<DaemonOptions>("daemon", "[options]")
        .Value("--socket", "PATH", "the API's Unix socket, mode 0600 (default /run/kiln/kiln.sock)", (o, v) => o.SocketPath = v)
        .Value("--state-dir", "DIR", "domain definitions, VMM records and console logs (default /var/lib/kiln)", (o, v) => o.StateDir = v)
        .Value("--tcp", "HOST:PORT", "also listen on TCP (TLS and a bearer token required; off by default)", (o, v) => o.Tcp = v)
        .Value("--tls-cert", "FILE", "PEM certificate for --tcp", (o, v) => o.TlsCert = v)
        .Value("--tls-key", "FILE", "PEM private key for --tcp", (o, v) => o.TlsKey = v)
        .Value("--token-file", "FILE", "the bearer token TCP clients must send (at least 16 characters)", (o, v) => o.TokenFile = v)
        .Flag("--no-spare-vmm", "do not keep a VMM process started ahead (starts then pay for a process start-up)", o => o.SpareVmm = false);

    public static string Help => Options.Help();

    public static int Execute(IReadOnlyList<string> args, bool debug = false)
    {
        var options = new DaemonOptions { Debug = debug };
        Options.Parse(options, args);
        options.StateDir = Path.GetFullPath(options.StateDir);
        options.SocketPath = Path.GetFullPath(options.SocketPath);
        options.KilnCommand = KilnCommand();
        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext c)
        {
            c.Cancel = true;
            stop.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        try
        {
            return DaemonHost.RunAsync(options, stop.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
    }

    /// <summary>How this very `kiln` was started, so the VMMs run the same build.</summary>
    private static string[] KilnCommand()
    {
        string process = Environment.ProcessPath ?? throw new DaemonException(500, "cannot tell where the kiln executable is");
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
            return [process, typeof(Program).Assembly.Location];
        return [process];
    }
}
