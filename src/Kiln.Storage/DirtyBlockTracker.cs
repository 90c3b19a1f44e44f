using System.Numerics;

namespace Kiln.Storage;

/// <summary>A pass-through <see cref="IDiskBackend"/> that, while tracking is on, remembers which
/// <see cref="BlockSize"/> blocks a write, discard or write-zeroes changed (for <c>migrate --copy-storage</c>: the
/// blocks to send again). Off, it costs one volatile read per changing request. A range is marked after the inner
/// backend finished it, so a reader that clears a block's bit and then reads the block either sees the new data or
/// finds the bit set again: a change is never lost. Safe against the device worker and a migration thread at once.</summary>
public sealed class DirtyBlockTracker(IDiskBackend inner) : IDiskBackend
{
    /// <summary>Tracking granularity: qcow2's default cluster, as QEMU's block-dirty bitmaps use by default.</summary>
    public const int BlockSize = 64 << 10;
    public const int BlockShift = 16;

    /// <summary>One bit per block while tracking, else null.</summary>
    private long[]? _bitmap;

    public IDiskBackend Inner => inner;
    public ulong Capacity => inner.Capacity;
    public bool IsReadOnly => inner.IsReadOnly;

    /// <summary>Blocks on the disk (the last one may be short).</summary>
    public long BlockCount => (long)((inner.Capacity + BlockSize - 1) >> BlockShift);

    public bool IsTracking => Volatile.Read(ref _bitmap) is not null;

    /// <summary>Starts remembering changed blocks, from a clean set. Starting twice is refused.</summary>
    public void StartTracking()
    {
        var fresh = new long[(BlockCount + 63) / 64];
        if (Interlocked.CompareExchange(ref _bitmap, fresh, null) is not null)
            throw new InvalidOperationException("dirty-block tracking is already on");
    }

    /// <summary>Stops tracking and forgets the set (a finished or abandoned migration).</summary>
    public void StopTracking() => Volatile.Write(ref _bitmap, null);

    /// <summary>Blocks changed since the last <see cref="TakeDirty"/> (a snapshot: more may be marked meanwhile).</summary>
    public long DirtyCount
    {
        get
        {
            var bitmap = Volatile.Read(ref _bitmap);
            if (bitmap is null)
                return 0;
            long count = 0;
            for (int i = 0; i < bitmap.Length; i++)
                count += BitOperations.PopCount((ulong)Volatile.Read(ref bitmap[i]));
            return count;
        }
    }

    /// <summary>Moves the changed set out (the tracker's set is empty afterwards, word by word atomically): one bit
    /// per block in the returned words. Empty when tracking is off.</summary>
    public long[] TakeDirty()
    {
        var bitmap = Volatile.Read(ref _bitmap);
        if (bitmap is null)
            return [];
        var taken = new long[bitmap.Length];
        for (int i = 0; i < bitmap.Length; i++)
            if (Volatile.Read(ref bitmap[i]) != 0)
                taken[i] = Interlocked.Exchange(ref bitmap[i], 0);
        return taken;
    }

    public void Read(ulong offset, Span<byte> destination) => inner.Read(offset, destination);

    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        inner.Write(offset, source);
        Mark(offset, (ulong)source.Length);
    }

    public void Flush() => inner.Flush();

    public void Discard(ulong offset, ulong length)
    {
        inner.Discard(offset, length);
        Mark(offset, length);
    }

    public void WriteZeroes(ulong offset, ulong length, bool mayUnmap)
    {
        inner.WriteZeroes(offset, length, mayUnmap);
        Mark(offset, length);
    }

    /// <summary>Marks the blocks [offset, offset+length) touches. The inner backend has already checked the range,
    /// so it lies on the disk.</summary>
    private void Mark(ulong offset, ulong length)
    {
        var bitmap = Volatile.Read(ref _bitmap);
        if (bitmap is null || length == 0)
            return;
        long first = (long)(offset >> BlockShift);
        long last = Math.Min((long)((offset + length - 1) >> BlockShift), (long)bitmap.Length * 64 - 1);
        for (long block = first; block <= last; block++)
        {
            int word = (int)(block >> 6);
            long bit = 1L << (int)(block & 63);
            if ((Volatile.Read(ref bitmap[word]) & bit) == 0)
                Interlocked.Or(ref bitmap[word], bit);
        }
    }

    /// <summary>True when the range is known to read as zero without reading it (the inner backend's allocation map,
    /// where it has one).</summary>
    public bool IsKnownZero(ulong offset, ulong length) =>
        inner is IAllocationMap map && map.IsKnownZero(offset, length);

    public void Dispose()
    {
        StopTracking();
        inner.Dispose();
    }
}
