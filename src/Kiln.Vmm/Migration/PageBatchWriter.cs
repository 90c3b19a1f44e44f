using System.Buffers.Binary;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>Drains a <see cref="DirtyPageTracker"/>'s pending pages into <see cref="PageFrame"/>s of up to 256 pages.</summary>
internal sealed class PageBatchWriter(GuestMemory memory, MigrationStream stream)
{
    private const int BatchPages = 256;
    private const int PageSize = PageFrame.PageSize;
    private readonly ulong[] _pending = new ulong[BatchPages];
    private readonly byte[] _table = new byte[PageFrame.TableLength(BatchPages)];
    private readonly ulong[] _data = new ulong[BatchPages];

    public long PagesSent { get; private set; }

    /// <summary>Sends every pending page. <paramref name="skipZero"/> (the first full pass only: the destination's
    /// RAM starts zeroed) leaves zero pages out; later passes send them as table entries without data.
    /// <paramref name="keepGoing"/> is checked between batches (abort, a stopping guest).</summary>
    public void SendPending(DirtyPageTracker tracker, bool skipZero, Action keepGoing)
    {
        int n;
        while ((n = tracker.TakePending(_pending)) > 0)
        {
            keepGoing();
            int count = 0, data = 0;
            for (int i = 0; i < n; i++)
            {
                bool zero = memory.GetSpan(new GuestAddress(_pending[i]), PageSize).IndexOfAnyExcept((byte)0) < 0;
                if (zero && skipZero)
                    continue;
                BinaryPrimitives.WriteUInt64LittleEndian(_table.AsSpan(PageFrame.TableLength(count)),
                    _pending[i] | (zero ? PageFrame.ZeroPage : 0));
                count++;
                // The guest may change the page after the zero check; what is sent is then stale, but the page is
                // dirty again in KVM's log and goes again in a later round (or in the final, paused one).
                if (!zero)
                    _data[data++] = _pending[i];
            }
            if (count == 0)
                continue;
            BinaryPrimitives.WriteUInt32LittleEndian(_table, (uint)count);
            int table = PageFrame.TableLength(count);
            stream.BeginFrame(MigrationFrame.Pages, table + data * PageSize);
            stream.Write(_table.AsSpan(0, table));
            stream.WritePages(memory, _data.AsSpan(0, data), PageSize);
            PagesSent += count;
        }
    }
}
