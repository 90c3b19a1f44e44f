using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kiln.Virtio;

/// <summary>Where virtio devices report a misbehaving driver (one line per failure): the process's logger, set once
/// by the VMM host (category Kiln.Virtio); nothing is logged until then.</summary>
public static class VirtioLog
{
    public static ILogger Logger { get; set; } = NullLogger.Instance;

    public static void Warn(string message)
    {
        try
        {
            Logger.LogWarning("{Message}", message);
        }
        catch (Exception)
        {
            // A broken log sink must not take a device (or the VMM) down.
        }
    }
}
