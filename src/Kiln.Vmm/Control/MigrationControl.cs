using Kiln.Contracts.Control;
using Kiln.Vmm.Migration;

namespace Kiln.Vmm.Control;

/// <summary>The control socket's <c>migrate</c> and <c>migrate-abort</c>: runs one outgoing migration at a time on
/// its own thread and turns its progress into watch events. Success stops the VMM with exit kind Migrated.</summary>
internal sealed class MigrationControl
{
    private readonly object _lock = new();
    private CancellationTokenSource? _running;

    /// <summary><paramref name="leftPaused"/> is called when the migration ended with its outcome unknown and the
    /// machine paused (the control server then reports it paused and lets <c>resume</c> run it again).</summary>
    public ControlResponse Start(VmmRunner runner, Machine machine, ControlRequest request, Action<ControlEvent> broadcast,
        Action leftPaused)
    {
        if (string.IsNullOrEmpty(request.Uri) || string.IsNullOrEmpty(request.Token))
            return Fail("migrate needs a uri (tcp:HOST:PORT) and the destination's token");
        MigrationEndpoint endpoint;
        try
        {
            endpoint = MigrationEndpoint.Parse(request.Uri);
        }
        catch (FormatException e)
        {
            return Fail(e.Message);
        }
        if (request.MaxDowntimeMs is < 1 or > 600_000)
            return Fail("maxDowntimeMs must be between 1 and 600000");
        if (request.MaxBandwidthMBps is < 1 or > 1_000_000)
            return Fail("maxBandwidthMBps must be between 1 and 1000000");
        if (request.MaxRounds is < 1 or > 1000)
            return Fail("maxRounds must be between 1 and 1000");
        var options = new MigrationOptions(endpoint, request.Token)
        {
            MaxRounds = request.MaxRounds ?? 30,
            Tls = request.Tls,
            CopyStorage = request.CopyStorage,
            MaxDowntime = TimeSpan.FromMilliseconds(request.MaxDowntimeMs ?? 300),
            MaxBandwidthBytesPerSecond = request.MaxBandwidthMBps * 1e6,
        };
        var cancel = new CancellationTokenSource();
        lock (_lock)
        {
            if (_running is not null)
                return Fail("a migration is already running");
            _running = cancel;
        }
        new Thread(() => Run(runner, machine, options, cancel, broadcast, leftPaused)) { Name = "migration", IsBackground = true }.Start();
        return new ControlResponse { Ok = true };
    }

    /// <summary>True from <c>migrate</c> until the migration has succeeded or failed.</summary>
    public bool IsRunning
    {
        get
        {
            lock (_lock)
                return _running is not null;
        }
    }

    public ControlResponse Abort()
    {
        lock (_lock)
        {
            if (_running is null)
                return Fail("no migration is running");
            _running.Cancel();
        }
        return new ControlResponse { Ok = true };
    }

    private void Run(VmmRunner runner, Machine machine, MigrationOptions options, CancellationTokenSource cancel,
        Action<ControlEvent> broadcast, Action leftPaused)
    {
        try
        {
            var source = new MigrationSource(machine, options, p => broadcast(new ControlEvent
            {
                Event = "migration", Phase = p.Phase, Round = p.Round, BytesSent = p.BytesSent,
                RemainingPages = p.RemainingPages, DirtyBytesPerSecond = p.DirtyBytesPerSecond,
                LinkBytesPerSecond = p.LinkBytesPerSecond, ExpectedDowntimeMs = p.ExpectedDowntimeMs,
                ThrottlePercent = p.ThrottlePercent,
                DiskBytesSent = options.CopyStorage ? p.DiskBytesSent : null,
                DiskRemainingBytes = options.CopyStorage ? p.DiskRemainingBytes : null,
            }));
            var result = source.Run(cancel.Token);
            string message = $"migrated to {options.Destination} in {result.Total.TotalMilliseconds:0} ms, " +
                             $"downtime {result.Downtime.TotalMilliseconds:0.0} ms, {result.Rounds} rounds, " +
                             $"{result.BytesSent / 1e6:0.0} MB sent" +
                             (options.CopyStorage ? $" ({result.DiskBytesSent / 1e6:0.0} MB of disk)" : "");
            KilnLog.Info(message);
            broadcast(new ControlEvent
            {
                Event = "migrated", Message = message, Round = result.Rounds, BytesSent = result.BytesSent,
                DowntimeMs = result.Downtime.TotalMilliseconds, TotalMs = result.Total.TotalMilliseconds,
                ThrottlePercent = result.ThrottlePercent,
                DiskBytesSent = options.CopyStorage ? result.DiskBytesSent : null,
            });
            runner.RequestStop(MachineExit.Migrated(message));
        }
        catch (MigrationOutcomeUnknownException e)
        {
            Finished(cancel); // before the event: a client that reacts with resume must find no migration running
            leftPaused();
            KilnLog.Warn(e.Message);
            broadcast(new ControlEvent { Event = "migration-failed", Message = e.Message });
        }
        catch (MigrationException e)
        {
            Finished(cancel);
            KilnLog.Warn($"migration failed, the guest keeps running here: {e.Message}");
            broadcast(new ControlEvent { Event = "migration-failed", Message = e.Message });
        }
        catch (Exception e)
        {
            // Not from the migration itself (which turns every failure into one of the above) but from reporting it:
            // still the migration thread's end, never the VMM's.
            Finished(cancel);
            KilnLog.Warn($"migration: {e.GetType().Name}: {e.Message}");
            KilnLog.Debug(e.ToString());
        }
        finally
        {
            Finished(cancel);
            cancel.Dispose();
        }
    }

    private void Finished(CancellationTokenSource cancel)
    {
        lock (_lock)
            if (_running == cancel)
                _running = null;
    }

    private static ControlResponse Fail(string error) => new() { Ok = false, Error = error };
}
