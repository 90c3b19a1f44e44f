using System.Globalization;

namespace Kiln.Daemon.Domains;

/// <summary>What /proc says about a VMM process: whether it is still the process the daemon started (its start time
/// in clock ticks, so a reused pid is not mistaken for it), and its CPU time and resident memory.</summary>
public static class ProcessStats
{
    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks), or -1 when there is no such process.</summary>
    public static long ProcessStartTicks(int pid)
    {
        var fields = StatFields(pid);
        return fields is null ? -1 : long.Parse(fields[19], CultureInfo.InvariantCulture);
    }

    /// <summary>The fields of /proc/PID/stat after the command name (field 3 is index 0).</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            var fields = stat[(close + 2)..].Split(' ');
            // A zombie has exited: it is not a running VMM.
            return fields[0] == "Z" ? null : fields;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static (double? Cpu, long? Rss) Usage(int pid)
    {
        var f = StatFields(pid);
        if (f is null)
            return (null, null);
        double cpu = (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0;
        long rss = long.Parse(f[21], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        return (cpu, rss);
    }
}
