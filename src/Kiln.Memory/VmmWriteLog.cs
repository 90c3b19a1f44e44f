namespace Kiln.Memory;

/// <summary>The pages the VMM itself wrote through its own mapping of guest RAM (virtio used rings and device-writable
/// buffers, instructions the VMM completes for the guest): KVM's dirty log only sees writes made by vCPUs, so a live
/// migration needs this second log next to it. One bit per 4 KiB page per region, set with atomic ORs by any thread
/// after the write it records, and taken (read and cleared atomically) by the migration thread. It exists only while
/// a <see cref="DirtyPageTracker"/> does; without one, writers pay one null check.</summary>
internal sealed class VmmWriteLog
{
    private const int PageShift = 12;
    private readonly ulong[][] _bits;

    public VmmWriteLog(IReadOnlyList<GuestRegion> regions) =>
        _bits = regions.Select(r => new ulong[(int)((r.Size / DirtyPageTracker.PageSize + 63) / 64)]).ToArray();

    /// <summary>Marks the pages of [offset, offset+length) of region <paramref name="region"/>; the range lies inside
    /// the region (the caller has checked it) and is non-empty.</summary>
    public void Mark(int region, ulong offset, ulong length)
    {
        var bits = _bits[region];
        ulong first = offset >> PageShift, last = (offset + length - 1) >> PageShift;
        for (ulong page = first; page <= last;)
        {
            int word = (int)(page / 64), bit = (int)(page % 64);
            // All the bits of this word from `bit` up to the last page (or the word's end).
            int count = (int)Math.Min((ulong)(64 - bit), last - page + 1);
            ulong mask = (count == 64 ? ulong.MaxValue : (1UL << count) - 1) << bit;
            if ((Volatile.Read(ref bits[word]) & mask) != mask)
                Interlocked.Or(ref bits[word], mask);
            page += (ulong)count;
        }
    }

    /// <summary>Moves region <paramref name="region"/>'s marks into <paramref name="into"/> (ORed) and clears them.
    /// A write marked concurrently lands either here or in the next call.</summary>
    public void TakeInto(int region, ulong[] into)
    {
        var bits = _bits[region];
        for (int i = 0; i < bits.Length; i++)
            if (Volatile.Read(ref bits[i]) != 0)
                into[i] |= Interlocked.Exchange(ref bits[i], 0);
    }
}
