using Microsoft.Win32.SafeHandles;

namespace Kiln.Memory;

/// <summary>Which pages of an anonymous guest region may hold data, from /proc/self/pagemap: a page that is neither
/// present nor swapped was never written (or was discarded), so it reads as zero and a snapshot need not even look
/// at it. Looking would fault every untouched page in: most of a large, mostly idle guest.</summary>
public static class PopulatedPages
{
    private const ulong Present = 1UL << 63, Swapped = 1UL << 62;
    private const int EntriesPerRead = 64 << 10;

    /// <summary>[offset, offset+length) ranges within <paramref name="region"/>, page-aligned and in order, outside
    /// which every byte is zero. A file-backed region (whose untouched pages hold the file's data) or an unreadable
    /// pagemap gives the whole region.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static List<(ulong Offset, ulong Length)> Ranges(GuestRegion region)
    {
        var whole = new List<(ulong, ulong)> { (0, region.Size) };
        if (region.IsFileBacked)
            return whole;
        SafeFileHandle map;
        try
        {
            map = File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return whole;
        }
        using (map)
        {
            var ranges = new List<(ulong Offset, ulong Length)>();
            ulong pages = region.Size / 4096;
            ulong firstEntry = (ulong)region.HostAddress / 4096;
            var buffer = new byte[EntriesPerRead * 8];
            ulong runStart = ulong.MaxValue;
            for (ulong done = 0; done < pages;)
            {
                int count = (int)Math.Min((ulong)EntriesPerRead, pages - done);
                int got = RandomAccess.Read(map, buffer.AsSpan(0, count * 8), (long)((firstEntry + done) * 8));
                if (got != count * 8)
                    return whole;
                for (int i = 0; i < count; i++)
                {
                    ulong entry = BitConverter.ToUInt64(buffer, i * 8);
                    ulong page = done + (ulong)i;
                    bool used = (entry & (Present | Swapped)) != 0;
                    if (used && runStart == ulong.MaxValue)
                        runStart = page;
                    else if (!used && runStart != ulong.MaxValue)
                    {
                        ranges.Add((runStart * 4096, (page - runStart) * 4096));
                        runStart = ulong.MaxValue;
                    }
                }
                done += (ulong)count;
            }
            if (runStart != ulong.MaxValue)
                ranges.Add((runStart * 4096, (pages - runStart) * 4096));
            return ranges;
        }
    }
}
