namespace Kiln.GuestKit;

/// <summary>Checks that every option the fragment sets ended up in the final .config: Kconfig silently drops
/// options whose dependencies are not met, and a dropped option would make a kernel that boots but lacks a
/// feature. An option the fragment turns off may be absent from .config altogether.</summary>
public static class KernelConfigCheck
{
    /// <summary>Option name to value ("y", "m", a number, a quoted string, or "n" for "is not set").</summary>
    public static Dictionary<string, string> Parse(string text)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith("# CONFIG_", StringComparison.Ordinal) && line.EndsWith(" is not set", StringComparison.Ordinal))
                options[line[2..^" is not set".Length]] = "n";
            else if (line.StartsWith("CONFIG_", StringComparison.Ordinal) && line.IndexOf('=') is var eq and > 0)
                options[line[..eq]] = line[(eq + 1)..];
        }
        return options;
    }

    /// <summary>The fragment's options that the final config does not have, as "CONFIG_X=wanted (got actual)".</summary>
    public static IReadOnlyList<string> Mismatches(string fragment, string finalConfig)
    {
        var final = Parse(finalConfig);
        var bad = new List<string>();
        foreach (var (name, wanted) in Parse(fragment))
        {
            string actual = final.GetValueOrDefault(name, "n");
            if (actual != wanted)
                bad.Add($"{name}={wanted} (got {actual})");
        }
        return bad;
    }
}
