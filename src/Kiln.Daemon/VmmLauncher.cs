using System.Diagnostics;
using System.Globalization;
using Kiln.Contracts.Control;

namespace Kiln.Daemon;

/// <summary>Starts VMM processes. Each is `kiln vmm-standby` in its own session (sh execs nice, which execs setsid,
/// which execs kiln, so the pid stays the VMM's and neither a daemon restart nor a signal to the daemon's process
/// group reaches it), told which domain to become by one line on its stdin.
///
/// One spare is kept started and warmed ahead, so a start hands its domain to a process that is already past .NET
/// start-up and has built a machine once: that is most of a cold VMM's start-up time. Starts beyond the spare (a
/// storm) start fresh processes, and the spare is replaced only once starts have been quiet for a moment, so
/// spares never compete with the starts for CPU.</summary>
public sealed class VmmLauncher : IDisposable
{
    private static readonly TimeSpan RefillDelay = TimeSpan.FromMilliseconds(250);
    private readonly string[] _kilnCommand;
    private readonly string _stateDir;
    private readonly string _standbyLog;
    private readonly bool _keepSpare;
    private readonly Lock _lock = new();
    private readonly Timer _refill;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private Process? _spare;
    private bool _disposed;

    public VmmLauncher(string[] kilnCommand, string stateDir, string standbyLog, bool keepSpare, Microsoft.Extensions.Logging.ILogger log)
    {
        _log = log;
        _kilnCommand = kilnCommand;
        _stateDir = stateDir;
        _standbyLog = standbyLog;
        _keepSpare = keepSpare;
        _refill = new Timer(_ => Refill());
        if (keepSpare)
            _refill.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
    }

    /// <summary>A VMM process that becomes the VM of <paramref name="launch"/>; its answer comes with
    /// <see cref="ReadReplyAsync"/>.</summary>
    public Process Launch(VmmLaunch launch)
    {
        string line = launch.ToJsonLine();
        Process? spare;
        lock (_lock)
        {
            spare = _spare;
            _spare = null;
        }
        if (_keepSpare)
            _refill.Change(RefillDelay, Timeout.InfiniteTimeSpan);
        if (spare is not null && TryHandOver(spare, line))
            return spare;
        var fresh = Spawn(warm: false);
        if (!TryHandOver(fresh, line))
            throw new DaemonException(500, "the VMM process ended before it could be given its domain (see " + _standbyLog + ")");
        return fresh;
    }

    /// <summary>The VMM's one reply line (<see cref="VmmLaunchReply"/>): running, or why not. Null when the VMM ended
    /// (or stayed silent for <paramref name="timeout"/>) without one.</summary>
    public static async Task<VmmLaunchReply?> ReadReplyAsync(Process child, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            string? line = await child.StandardOutput.ReadLineAsync(cancel.Token);
            return line is null ? null : VmmLaunchReply.TryParse(line);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            return null;
        }
    }

    private static bool TryHandOver(Process p, string line)
    {
        try
        {
            if (p.HasExited)
            {
                p.Dispose();
                return false;
            }
            p.StandardInput.WriteLine(line);
            p.StandardInput.Close(); // the VMM reads nothing more from it
            return true;
        }
        catch (IOException)
        {
            p.Dispose();
            return false;
        }
    }

    private void Refill()
    {
        lock (_lock)
        {
            if (_disposed || (_spare is { HasExited: false }))
                return;
            _spare?.Dispose();
            try
            {
                _spare = Spawn(warm: true);
            }
            catch (Exception e) when (e is IOException or System.ComponentModel.Win32Exception)
            {
                _spare = null;
                Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(_log, "cannot start a spare VMM: {Message}", e.Message);
            }
        }
    }

    private Process Spawn(bool warm)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        // stdout stays a pipe to us until the launch: the VMM answers on it (then points it at the domain's log).
        psi.ArgumentList.Add("exec nice -n \"$KILN_VM_NICE\" setsid \"$@\" 2>>\"$KILN_VM_LOG\"");
        psi.ArgumentList.Add("kiln-vmm");
        foreach (var a in _kilnCommand)
            psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("vmm-standby");
        psi.ArgumentList.Add("--state-dir");
        psi.ArgumentList.Add(_stateDir);
        if (warm)
            psi.ArgumentList.Add("--warm");
        psi.Environment["KILN_VM_LOG"] = _standbyLog;
        // A daemon running at a raised priority (nice < 0) starts its VMMs back at nice 0: guests are not favoured.
        psi.Environment["KILN_VM_NICE"] = Math.Max(0, -Kiln.Interop.ProcessCalls.GetNice()).ToString(CultureInfo.InvariantCulture);
        return Process.Start(psi) ?? throw new DaemonException(500, "cannot start the VMM process");
    }

    public void Dispose()
    {
        Process? spare;
        lock (_lock)
        {
            _disposed = true;
            spare = _spare;
            _spare = null;
        }
        _refill.Dispose();
        if (spare is not null)
        {
            // Not a domain yet: closing its stdin ends it.
            try
            {
                spare.StandardInput.Close();
            }
            catch (IOException)
            {
            }
            spare.Dispose();
        }
    }
}
