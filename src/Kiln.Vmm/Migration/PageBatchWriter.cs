using System.Buffers.Binary;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>Drains a <see cref="DirtyPageTracker"/>'s pending pages into Pages frames of up to 256 pages each.</summary>
internal sealed class PageBatchWriter(GuestMemory memory, MigrationStream stream)
{
    private const int BatchPages = 256;
    private const int PageSize = DirtyPageTracker.PageSize;
    private readonly ulong[] _addresses = new ulong[BatchPages];
    private readonly bool[] _zero = new bool[BatchPages];
    private readonly byte[] _entry = new byte[9];
    private readonly byte[] _count = new byte[4];

    public long PagesSent { get; private set; }

    /// <summary>Sends every pending page. <paramref name="skipZero"/> (the first full pass only: the destination's
    /// RAM starts zeroed) leaves zero pages out; later passes send them as 9-byte zero entries.
    /// <paramref name="keepGoing"/> is checked between batches (abort, a stopping guest).</summary>
    public void SendPending(DirtyPageTracker tracker, bool skipZero, Action keepGoing)
    {
        int n;
        while ((n = tracker.TakePending(_addresses)) > 0)
        {
            keepGoing();
            int count = 0, length = 4;
            for (int i = 0; i < n; i++)
            {
                bool zero = memory.GetSpan(new GuestAddress(_addresses[i]), PageSize).IndexOfAnyExcept((byte)0) < 0;
                if (zero && skipZero)
                    continue;
                _addresses[count] = _addresses[i];
                _zero[count] = zero;
                length += 9 + (zero ? 0 : PageSize);
                count++;
            }
            if (count == 0)
                continue;
            stream.BeginFrame(MigrationFrame.Pages, length);
            BinaryPrimitives.WriteUInt32LittleEndian(_count, (uint)count);
            stream.Write(_count);
            for (int i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(_entry, _addresses[i]);
                _entry[8] = _zero[i] ? (byte)1 : (byte)0;
                stream.Write(_entry);
                // The guest may change the page after the zero check; what is sent is then stale, but the page is
                // dirty again in KVM's log and goes again in a later round (or in the final, paused one).
                if (!_zero[i])
                    stream.Write(memory.GetSpan(new GuestAddress(_addresses[i]), PageSize));
            }
            PagesSent += count;
        }
    }
}
