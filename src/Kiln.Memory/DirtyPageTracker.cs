using System.Numerics;
using Kiln.Kvm;

namespace Kiln.Memory;

/// <summary>KVM dirty-page logging over all of a guest's RAM, for live migration. Creating it re-registers every
/// slot with KVM_MEM_LOG_DIRTY_PAGES (logging on); <see cref="Collect"/> moves KVM's bitmaps (which KVM_GET_DIRTY_LOG
/// clears and write-protects again) into a pending set that the caller drains page by page; disposing turns
/// logging off again, so a failed migration leaves the guest as it was. KVM logs only guest (vCPU) writes; what the
/// VMM writes through its own mapping (virtio used rings and buffers, emulated instructions) is logged by the
/// <see cref="GuestMemory"/> itself (<see cref="VmmWriteLog"/>) while the tracker lives, and merged here.</summary>
public sealed class DirtyPageTracker : IDisposable
{
    public const int PageSize = 4096;

    private readonly GuestMemory _memory;
    private readonly VirtualMachine _vm;
    private readonly ulong[][] _fromKvm;
    private readonly ulong[][] _pending;
    private readonly VmmWriteLog _vmmWrites;
    private bool _disposed;

    public DirtyPageTracker(GuestMemory memory, VirtualMachine vm)
    {
        _memory = memory;
        _vm = vm;
        _fromKvm = memory.Regions.Select(r => new ulong[BitmapWords(r.Size)]).ToArray();
        _pending = memory.Regions.Select(r => new ulong[BitmapWords(r.Size)]).ToArray();
        _vmmWrites = memory.StartWriteLog();
        try
        {
            memory.RegisterWith(vm, VirtualMachine.MemLogDirtyPages);
        }
        catch
        {
            memory.StopWriteLog();
            throw;
        }
    }

    private static int BitmapWords(ulong size) => checked((int)((size / PageSize + 63) / 64));

    /// <summary>Pages dirtied and not yet taken with <see cref="TakePending"/>.</summary>
    public long PendingPages { get; private set; }

    /// <summary>Fetches what the guest (KVM's log) and the VMM (its write log) dirtied since the last call (or since
    /// logging started) into the pending set; returns how many pages that call found dirty (before merging, so a rate
    /// can be computed from it). Pages the VMM writes after this call are found by
    /// the next one: a stop-and-copy must pause the vCPUs and quiesce the device workers first.</summary>
    public long Collect()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long found = 0, pending = 0;
        for (int slot = 0; slot < _fromKvm.Length; slot++)
        {
            var fresh = _fromKvm[slot];
            var into = _pending[slot];
            _vm.GetDirtyLog((uint)slot, fresh);
            _vmmWrites.TakeInto(slot, fresh);
            for (int i = 0; i < fresh.Length; i++)
            {
                found += BitOperations.PopCount(fresh[i]);
                into[i] |= fresh[i];
                pending += BitOperations.PopCount(into[i]);
            }
        }
        PendingPages = pending;
        return found;
    }

    /// <summary>Marks every page of RAM pending (the first, full pass), except pages the host never backed: an
    /// anonymous page that is neither present nor swapped out (per /proc/self/pagemap) was never written and reads
    /// as zero, so a guest that touched little of its RAM is not read page by page (each read would fault).</summary>
    public void MarkAll()
    {
        long pending = 0;
        using var pagemap = PageMap.TryOpen();
        for (int slot = 0; slot < _pending.Length; slot++)
        {
            var region = _memory.Regions[slot];
            ulong pages = region.Size / PageSize;
            var into = _pending[slot];
            for (int i = 0; i < into.Length; i++)
            {
                ulong remaining = pages - (ulong)i * 64;
                into[i] = remaining >= 64 ? ulong.MaxValue : (1UL << (int)remaining) - 1;
            }
            pagemap?.KeepBacked((ulong)region.HostAddress, into);
            foreach (ulong word in into)
                pending += BitOperations.PopCount(word);
        }
        PendingPages = pending;
    }

    /// <summary>Takes up to <paramref name="addresses"/>.Length pending pages (guest-physical addresses, ascending within a
    /// slot) and clears them from the pending set; returns how many it wrote.</summary>
    public int TakePending(Span<ulong> addresses)
    {
        int n = 0;
        for (int slot = 0; slot < _pending.Length && n < addresses.Length; slot++)
        {
            var bits = _pending[slot];
            ulong start = _memory.Regions[slot].Start.Value;
            for (int i = 0; i < bits.Length && n < addresses.Length; i++)
            {
                while (bits[i] != 0 && n < addresses.Length)
                {
                    int bit = BitOperations.TrailingZeroCount(bits[i]);
                    bits[i] &= bits[i] - 1;
                    addresses[n++] = start + ((ulong)i * 64 + (ulong)bit) * PageSize;
                }
            }
        }
        PendingPages -= n;
        return n;
    }

    /// <summary>Turns KVM's logging off again (the slots are re-registered without the flag).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _memory.StopWriteLog();
        _memory.RegisterWith(_vm, 0);
    }
}
