using Microsoft.Win32.SafeHandles;

namespace Kiln.Memory;

/// <summary>/proc/self/pagemap: one 64-bit entry per virtual page of this process; bit 63 = present in RAM,
/// bit 62 = swapped out. Readable without privileges for these two bits.</summary>
internal sealed class PageMap : IDisposable
{
    private const int PageSize = 4096;
    private const ulong Present = 1UL << 63;
    private const ulong Swapped = 1UL << 62;
    private const int ChunkPages = 1 << 16;
    private readonly SafeFileHandle _file;

    private PageMap(SafeFileHandle file) => _file = file;

    public static PageMap? TryOpen()
    {
        try
        {
            return new PageMap(File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Clears the bits of <paramref name="bitmap"/> (one per page from <paramref name="hostAddress"/>)
    /// whose pages are neither present nor swapped. On a read error the bitmap is left as it is (all kept).</summary>
    public void KeepBacked(ulong hostAddress, ulong[] bitmap)
    {
        var entries = new byte[ChunkPages * 8];
        long pages = (long)bitmap.Length * 64;
        for (long first = 0; first < pages; first += ChunkPages)
        {
            int count = (int)Math.Min(ChunkPages, pages - first);
            long offset = (long)(hostAddress / PageSize + (ulong)first) * 8;
            int read;
            try
            {
                read = RandomAccess.Read(_file, entries.AsSpan(0, count * 8), offset);
            }
            catch (IOException)
            {
                return;
            }
            if (read != count * 8)
                return;
            for (int i = 0; i < count; i++)
            {
                ulong entry = BitConverter.ToUInt64(entries, i * 8);
                if ((entry & (Present | Swapped)) == 0)
                {
                    long page = first + i;
                    bitmap[page / 64] &= ~(1UL << (int)(page % 64));
                }
            }
        }
    }

    public void Dispose() => _file.Dispose();
}
