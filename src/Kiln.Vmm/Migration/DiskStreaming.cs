using System.Buffers.Binary;
using Kiln.Interop;
using Kiln.Storage;
using Kiln.Virtio.Block;

namespace Kiln.Vmm.Migration;

/// <summary>The source's half of <c>migrate --copy-storage</c> (like QEMU's block migration): announces the disks
/// in Hello, sends every writable disk's content once (zero ranges as zero runs, found through the image's
/// allocation map or by looking), then, each round, the blocks the guest changed meanwhile
/// (<see cref="DirtyBlockTracker"/>); the last round runs with the machine paused. A backing chain is flattened:
/// what the guest reads, whichever image of the chain holds it, lands in the destination's single image.
/// Read-only disks are not copied: they cannot change, so the destination must have them already.</summary>
internal sealed class DiskStreaming
{
    /// <summary>Data per DiskBlocks frame before it goes out.</summary>
    private const int FrameData = 1 << 20;
    private const int EntryHeader = 13;

    private readonly List<(int Index, DirtyBlockTracker Disk)> _copied = [];
    private readonly List<(ulong Capacity, bool Copied, byte Format, FileIdentity Identity)> _all = [];
    private readonly byte[] _frame = new byte[8 + FrameData + 64 * EntryHeader];
    private int _length, _count, _frameDisk = -1;

    private DiskStreaming()
    {
    }

    /// <summary>Bytes of disk data (and zero-run entries) written so far.</summary>
    public long BytesSent { get; private set; }

    /// <summary>Bytes the guest changed that are not sent yet.</summary>
    public long PendingBytes => _copied.Sum(d => d.Disk.DirtyCount) * DirtyBlockTracker.BlockSize;

    public static DiskStreaming For(Machine machine) =>
        ForDisks(machine.VirtioDevices.OfType<VirtioBlock>().Select((b, i) => b.Disk as DirtyBlockTracker
            ?? throw new MigrationException($"disk {i} cannot be tracked for --copy-storage")).ToList());

    /// <summary>The machine's disks in device order (vda, vdb, ...).</summary>
    internal static DiskStreaming ForDisks(IReadOnlyList<DirtyBlockTracker> disks)
    {
        var streaming = new DiskStreaming();
        for (int i = 0; i < disks.Count; i++)
        {
            var disk = disks[i];
            bool copied = !disk.IsReadOnly;
            byte format = disk.Inner is Storage.Qcow2.Qcow2Disk ? DiskFormats.Qcow2 : DiskFormats.Raw;
            string? path = disk.Inner switch
            {
                RawDiskBackend raw => raw.Path,
                Storage.Qcow2.Qcow2Disk qcow2 => qcow2.Path,
                _ => null,
            };
            streaming._all.Add((disk.Capacity, copied, format, path is null ? default : FileIdentity.Of(path)));
            if (copied)
                streaming._copied.Add((i, disk));
        }
        return streaming;
    }

    /// <summary>The disk table appended to Hello: u32 count, then per disk (<see cref="TableEntry"/> bytes) u64
    /// capacity, u8 flags (bit 0: copied), u8 format (0 raw, 1 qcow2), the image's <see cref="FileIdentity"/> (so a
    /// destination on the same host refuses to write the source's own file).</summary>
    public byte[] HelloExtension()
    {
        var table = new byte[4 + _all.Count * TableEntry];
        BinaryPrimitives.WriteUInt32LittleEndian(table, (uint)_all.Count);
        for (int i = 0; i < _all.Count; i++)
        {
            var span = table.AsSpan(4 + i * TableEntry);
            BinaryPrimitives.WriteUInt64LittleEndian(span, _all[i].Capacity);
            span[8] = _all[i].Copied ? (byte)1 : (byte)0;
            span[9] = _all[i].Format;
            _all[i].Identity.WriteTo(span[10..]);
        }
        return table;
    }

    public const int TableEntry = 10 + FileIdentity.Size;

    /// <summary>Turns tracking on, from a clean set (a set left by an earlier migration is dropped: the first pass
    /// sends everything anyway); from here every guest change is remembered for a later round.</summary>
    public void Start()
    {
        foreach (var (_, disk) in _copied)
        {
            disk.StopTracking();
            disk.StartTracking();
        }
    }

    public void Stop()
    {
        foreach (var (_, disk) in _copied)
            disk.StopTracking();
    }

    /// <summary>The first pass: every block of every copied disk.</summary>
    public void SendAll(MigrationStream stream, Action keepGoing)
    {
        var time = System.Diagnostics.Stopwatch.StartNew();
        long before = BytesSent;
        foreach (var (index, disk) in _copied)
        {
            for (long block = 0; block < disk.BlockCount; block++)
                SendBlock(stream, index, disk, block, keepGoing);
            FlushFrame(stream);
        }
        KilnLog.Debug($"migration: disk pass: {(BytesSent - before) / 1e6:0.0} MB in {time.Elapsed.TotalMilliseconds:0} ms");
    }

    /// <summary>A later pass: the blocks changed since the previous one.</summary>
    public void SendDirty(MigrationStream stream, Action keepGoing)
    {
        foreach (var (index, disk) in _copied)
        {
            var dirty = disk.TakeDirty();
            for (int word = 0; word < dirty.Length; word++)
            {
                ulong bits = (ulong)dirty[word];
                while (bits != 0)
                {
                    int bit = System.Numerics.BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                    SendBlock(stream, index, disk, (long)word * 64 + bit, keepGoing);
                }
            }
            FlushFrame(stream);
        }
    }

    /// <summary>Adds one block to the frame being built: as data, or as zero (extending a zero run that ends where
    /// this block starts).</summary>
    private void SendBlock(MigrationStream stream, int index, DirtyBlockTracker disk, long block, Action keepGoing)
    {
        ulong offset = (ulong)block << DirtyBlockTracker.BlockShift;
        int length = (int)Math.Min(DirtyBlockTracker.BlockSize, disk.Capacity - offset);
        if (_frameDisk != index || _length + EntryHeader + length > _frame.Length)
        {
            FlushFrame(stream);
            keepGoing();
            _frameDisk = index;
            _length = 8;
        }
        bool zero = disk.IsKnownZero(offset, (ulong)length);
        if (!zero)
        {
            var data = _frame.AsSpan(_length + EntryHeader, length);
            disk.Read(offset, data);
            zero = !data.ContainsAnyExcept((byte)0);
            if (!zero)
            {
                WriteEntry(offset, (uint)length, DiskBlockKind.Data);
                _length += length;
                return;
            }
        }
        if (_lastZeroAt >= 0 && _lastZeroEnd == offset)
        {
            uint run = BinaryPrimitives.ReadUInt32LittleEndian(_frame.AsSpan(_lastZeroAt + 8)) + (uint)length;
            if (run <= uint.MaxValue - DirtyBlockTracker.BlockSize)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(_frame.AsSpan(_lastZeroAt + 8), run);
                _lastZeroEnd += (ulong)length;
                return;
            }
        }
        _lastZeroAt = _length;
        _lastZeroEnd = offset + (ulong)length;
        WriteEntry(offset, (uint)length, DiskBlockKind.Zero);
    }

    private int _lastZeroAt = -1;
    private ulong _lastZeroEnd;

    private void WriteEntry(ulong offset, uint length, DiskBlockKind kind)
    {
        var entry = _frame.AsSpan(_length, EntryHeader);
        BinaryPrimitives.WriteUInt64LittleEndian(entry, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], length);
        entry[12] = (byte)kind;
        _length += EntryHeader;
        _count++;
        if (kind == DiskBlockKind.Data)
            _lastZeroAt = -1;
    }

    private void FlushFrame(MigrationStream stream)
    {
        if (_count > 0)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_frame, (uint)_frameDisk);
            BinaryPrimitives.WriteUInt32LittleEndian(_frame.AsSpan(4), (uint)_count);
            stream.WriteFrame(MigrationFrame.DiskBlocks, _frame.AsSpan(0, _length));
            BytesSent += _length;
        }
        _count = 0;
        _length = 8;
        _lastZeroAt = -1;
    }
}

/// <summary>Image formats in the Hello disk table.</summary>
internal static class DiskFormats
{
    public const byte Raw = 0;
    public const byte Qcow2 = 1;

    public static string Name(byte format) => format == Qcow2 ? "qcow2" : "raw";
}

/// <summary>An entry of a DiskBlocks frame.</summary>
internal enum DiskBlockKind : byte
{
    /// <summary>The entry's length of data follows.</summary>
    Data = 0,

    /// <summary>The range reads as zero; nothing follows.</summary>
    Zero = 1,
}
