using System.Buffers.Binary;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>The Pages frame: u32 count, count x u64 entries (a page's guest-physical address; bit 0 set = a zero
/// page, sent without data), then the 4096 data bytes of every entry without bit 0, in entry order. The table comes
/// first so the destination can check every address before any data lands and then read the data straight into the
/// guest pages (<see cref="MigrationStream.ReadPages"/>).</summary>
internal static class PageFrame
{
    public const int PageSize = DirtyPageTracker.PageSize;
    /// <summary>Most entries one frame may carry (a sender batches 256).</summary>
    public const int MaxPages = 1024;
    public const ulong ZeroPage = 1;

    public static int TableLength(int count) => 4 + 8 * count;

    /// <summary>Reads the payload of one Pages frame (<paramref name="length"/> bytes, header already read) into RAM.
    /// Everything is checked before use: the count against the length, each entry's flags and alignment, that each
    /// page is guest RAM, and that the length is exactly the table plus the data pages.</summary>
    public static void Receive(MigrationStream stream, int length, GuestMemory memory, Scratch scratch)
    {
        if (length < 4)
            throw new MigrationException("protocol error: short Pages frame");
        stream.ReadExactly(scratch.Table.AsSpan(0, 4));
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(scratch.Table);
        if (count == 0 || count > MaxPages || TableLength((int)count) > length)
            throw new MigrationException($"protocol error: a Pages frame of {length} bytes claims {count} pages");
        int n = (int)count;
        var table = scratch.Table.AsSpan(4, 8 * n);
        stream.ReadExactly(table);
        int data = 0;
        for (int i = 0; i < n; i++)
        {
            ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(table[(8 * i)..]);
            ulong address = entry & ~(ulong)(PageSize - 1);
            ulong flags = entry & (PageSize - 1);
            if (flags > ZeroPage || !memory.TryGetSpan(new GuestAddress(address), PageSize, out var page))
                throw new MigrationException($"protocol error: page entry 0x{entry:x} is not a page of guest RAM");
            if (flags == ZeroPage)
                page.Clear();
            else
                scratch.Data[data++] = address;
        }
        if ((long)TableLength(n) + (long)data * PageSize != length)
            throw new MigrationException($"protocol error: a Pages frame of {length} bytes for {n} pages, {data} with data");
        stream.ReadPages(memory, scratch.Data.AsSpan(0, data), PageSize);
    }

    /// <summary>Buffers reused across frames.</summary>
    public sealed class Scratch
    {
        public readonly byte[] Table = new byte[TableLength(MaxPages)];
        public readonly ulong[] Data = new ulong[MaxPages];
    }
}
