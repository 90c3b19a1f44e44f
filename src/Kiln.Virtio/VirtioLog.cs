namespace Kiln.Virtio;

/// <summary>Where virtio devices report a misbehaving driver (one line per failure). The VMM points
/// <see cref="Sink"/> at its own log; the default writes to stderr.</summary>
public static class VirtioLog
{
    public static Action<string> Sink { get; set; } = line => System.Console.Error.WriteLine("kiln: warning: " + line);

    public static void Warn(string message)
    {
        try
        {
            Sink(message);
        }
        catch (Exception)
        {
            // A broken log sink must not take a device (or the VMM) down.
        }
    }
}
