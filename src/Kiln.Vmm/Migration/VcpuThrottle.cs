namespace Kiln.Vmm.Migration;

/// <summary>Auto-converge: slows a guest that dirties memory faster than the link carries it by pausing its vCPUs
/// for <see cref="Percent"/> of every 100 ms. Stop always leaves the vCPUs running.</summary>
internal sealed class VcpuThrottle(Machine machine) : IDisposable
{
    private const int PeriodMs = 100;
    private readonly object _gate = new();
    private Thread? _thread;
    private volatile int _percent;
    private volatile bool _stopped;

    public int Percent
    {
        get => _percent;
        set
        {
            _percent = Math.Clamp(value, 0, 99);
            if (_percent > 0 && _thread is null && !_stopped)
            {
                _thread = new Thread(Loop) { Name = "migration-throttle", IsBackground = true };
                _thread.Start();
            }
        }
    }

    private void Loop()
    {
        try
        {
            while (!_stopped)
            {
                int pauseMs = PeriodMs * _percent / 100;
                lock (_gate)
                {
                    if (_stopped)
                        return;
                    machine.Pause();
                }
                Thread.Sleep(pauseMs);
                lock (_gate)
                    machine.Resume();
                Thread.Sleep(PeriodMs - pauseMs);
            }
        }
        catch (Exception e)
        {
            // A thread of its own: a failure here ends throttling (the migration may then not converge), not the VMM.
            KilnLog.Warn($"migration: vCPU throttling stopped: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Ends throttling; the vCPUs run when this returns.</summary>
    public void Dispose()
    {
        lock (_gate)
            _stopped = true;
        _thread?.Join();
    }
}
