using System.Globalization;

namespace Kiln.Cli;

/// <summary>Sizes as QEMU's -m takes them: a number with an optional K/M/G/T suffix (optionally "iB" or "B");
/// a bare number means MiB.</summary>
public static class SizeParser
{
    public static ulong Parse(string text, string what)
    {
        string s = text.Trim();
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase))
            s = s[..^2];
        else if (s.EndsWith('B') || s.EndsWith('b'))
            s = s[..^1];
        ulong multiplier = 1UL << 20;
        if (s.Length > 0 && char.IsLetter(s[^1]))
        {
            multiplier = char.ToUpperInvariant(s[^1]) switch
            {
                'K' => 1UL << 10,
                'M' => 1UL << 20,
                'G' => 1UL << 30,
                'T' => 1UL << 40,
                _ => throw new UsageException($"{what}: unknown size suffix in '{text}' (use K, M, G or T)"),
            };
            s = s[..^1];
        }
        if (!ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n) || n == 0)
            throw new UsageException($"{what}: '{text}' is not a size (e.g. 512M, 2G)");
        try
        {
            return checked(n * multiplier);
        }
        catch (OverflowException)
        {
            throw new UsageException($"{what}: '{text}' is too large");
        }
    }

    /// <summary>A port or other number, decimal or 0x-prefixed hex.</summary>
    public static ulong ParseNumber(string text, string what, ulong max)
    {
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong n)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out n);
        if (!ok || n > max)
            throw new UsageException($"{what}: '{text}' is not a number from 0 to {max}");
        return n;
    }
}
