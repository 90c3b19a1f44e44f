namespace Kiln.Devices;

/// <summary>Log lines a guest can trigger at will: a device access that faulted, an MSI nobody can receive, a driver
/// that breaks the virtio protocol again after every reset. Each reporting site owns one of these, and at most
/// <see cref="Burst"/> of its lines per <see cref="Interval"/> are written; the rest are counted, and the next line
/// written says how many were left out (as the kernel's printk_ratelimit does). A hostile guest thus cannot flood
/// the host's log, and one noisy device does not hide another's lines.
///
/// Every line goes through <see cref="Sink"/>, the one place the VMM points at its own log.</summary>
public sealed class RateLimitedLog
{
    public const int DefaultBurst = 10;
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(5);

    /// <summary>Where every rate-limited line goes (the VMM sets its warning log); the default writes to stderr.</summary>
    public static Action<string> Sink { get; set; } = line => Console.Error.WriteLine("kiln: warning: " + line);

    private readonly TimeProvider _time;
    private readonly Action<string>? _sink;
    private readonly long _intervalTicks;
    private readonly Lock _lock = new();
    private long _windowStart;
    private int _written;
    private long _suppressed;
    private long _suppressedTotal;

    /// <param name="sink">Where this site's lines go instead of <see cref="Sink"/> (tests).</param>
    public RateLimitedLog(int burst = DefaultBurst, TimeSpan? interval = null, TimeProvider? time = null,
        Action<string>? sink = null)
    {
        _sink = sink;
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        Burst = burst;
        Interval = interval ?? DefaultInterval;
        _time = time ?? TimeProvider.System;
        _intervalTicks = (long)(Interval.TotalSeconds * _time.TimestampFrequency);
        _windowStart = _time.GetTimestamp();
    }

    public int Burst { get; }
    public TimeSpan Interval { get; }

    /// <summary>Lines left out so far (for statistics and tests).</summary>
    public long Suppressed
    {
        get
        {
            lock (_lock)
                return _suppressedTotal;
        }
    }

    /// <summary>Writes the line unless this site's budget for the current interval is spent. Never throws: a broken
    /// sink must not turn a contained guest fault into a VMM failure.</summary>
    public void Write(string message)
    {
        long leftOut;
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            if (now - _windowStart >= _intervalTicks)
            {
                _windowStart = now;
                _written = 0;
            }
            if (_written >= Burst)
            {
                _suppressed++;
                _suppressedTotal++;
                return;
            }
            _written++;
            leftOut = _suppressed;
            _suppressed = 0;
        }
        if (leftOut > 0)
            message += $" ({leftOut} similar line{(leftOut == 1 ? "" : "s")} left out)";
        try
        {
            (_sink ?? Sink)(message);
        }
        catch (Exception)
        {
            // Nowhere left to report it.
        }
    }
}
