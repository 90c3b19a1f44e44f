using System.Globalization;

namespace Kiln.Cli;

/// <summary>The one size parser of the CLI: a number (fractions allowed) with an optional K/M/G/T/P/E suffix
/// (optionally followed by "iB" or "B"; all binary). A bare number means MiB for guest memory (QEMU's -m) and
/// bytes for images (qemu-img); numbers and ports are decimal or 0x-prefixed hex.</summary>
public static class SizeParser
{
    /// <summary>A guest memory size: a bare number is MiB; zero is refused.</summary>
    public static ulong Parse(string text, string what) => Parse(text, what, bareShift: 20, allowZero: false);

    /// <summary>An image size: a bare number is bytes.</summary>
    public static ulong ParseBytes(string text, string what) => Parse(text, what, bareShift: 0, allowZero: true);

    public static ulong Parse(string text, string what, int bareShift, bool allowZero)
    {
        string s = text.Trim();
        int shift = bareShift;
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase))
            s = s[..^2];
        else if (s.EndsWith('B') || s.EndsWith('b'))
        {
            s = s[..^1];
            if (s.Length > 0 && !char.IsLetter(s[^1]))
                shift = 0; // "512B": bytes
        }
        if (s.Length > 0 && char.IsLetter(s[^1]))
        {
            shift = char.ToUpperInvariant(s[^1]) switch
            {
                'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, 'P' => 50, 'E' => 60,
                _ => throw new UsageException($"{what}: unknown size suffix in '{text}' (use K, M, G or T)"),
            };
            s = s[..^1];
        }
        if (s.Length == 0 || !decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal n))
            throw new UsageException($"{what}: '{text}' is not a size (e.g. 512M, 2G)");
        decimal bytes;
        try
        {
            bytes = n * (1UL << shift);
        }
        catch (OverflowException)
        {
            throw new UsageException($"{what}: '{text}' is too large");
        }
        if (bytes > long.MaxValue)
            throw new UsageException($"{what}: '{text}' is too large");
        if (bytes != decimal.Truncate(bytes) || (bytes == 0 && !allowZero))
            throw new UsageException($"{what}: '{text}' is not a size (e.g. 512M, 2G)");
        return (ulong)bytes;
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
