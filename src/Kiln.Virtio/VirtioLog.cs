using Microsoft.Extensions.Logging;

namespace Kiln.Virtio;

/// <summary>Where virtio devices report a misbehaving driver (one line per failure): a logger from the process's
/// logger factory (category Kiln.Virtio), which the VMM host names once through <see cref="Source"/>. The logger is
/// asked for only when a device first has something to say, so a VMM that never warns never loads the logging
/// framework (start-up time is a product feature). Until a source is set nothing is logged.</summary>
public static class VirtioLog
{
    /// <summary>Makes the devices' logger; called once, on the first warning.</summary>
    public delegate ILogger LoggerSource();

    private static readonly Lock Gate = new();
    private static ILogger? s_logger;

    public static LoggerSource? Source { get; set; }

    public static void Warn(string message)
    {
        try
        {
            Logger()?.LogWarning("{Message}", message);
        }
        catch (Exception)
        {
            // A broken log sink must not take a device (or the VMM) down.
        }
    }

    private static ILogger? Logger()
    {
        lock (Gate)
            return s_logger ??= Source?.Invoke();
    }
}
