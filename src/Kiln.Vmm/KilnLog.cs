namespace Kiln.Vmm;

/// <summary>Kiln's VMM diagnostics on stderr. Deliberately tiny: the VMM's start-up time is a product feature,
/// and this path must not pull in a logging framework before the guest's first instruction.</summary>
public static class KilnLog
{
    public static bool DebugEnabled { get; set; }

    public static void Debug(string message)
    {
        if (DebugEnabled)
            Write("debug: " + message);
    }

    public static void Info(string message) => Write(message);

    public static void Warn(string message) => Write("warning: " + message);

    public static void Error(string message) => Write("error: " + message);

    private static readonly object s_lock = new();

    private static void Write(string line)
    {
        // The console may be in raw mode, where a bare \n does not return the carriage.
        var bytes = System.Text.Encoding.UTF8.GetBytes("kiln: " + line + "\r\n");
        lock (s_lock)
            Interop.Libc.WriteAll(2, bytes);
    }
}
