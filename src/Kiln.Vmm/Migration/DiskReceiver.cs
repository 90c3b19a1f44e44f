using Kiln.Contracts.Spec;
using System.Buffers.Binary;
using Kiln.Interop;
using Kiln.Storage;
using Kiln.Virtio.Block;

namespace Kiln.Vmm.Migration;

/// <summary>The destination's half of <c>migrate --copy-storage</c>. From the Hello disk table it makes sure each
/// copied disk of this VMM's own configuration (its paths, not the source's) exists with the source's virtual size:
/// an absent image is created (the configured format, else the source's; qcow2 without a backing file, since the
/// source flattens its chain), an existing one must match the size. DiskBlocks frames are then written through the
/// machine's own disk backends (one owner per image, so qcow2 metadata caches stay right), every value checked
/// against the disk first. A failed migration deletes the images this receiver created.</summary>
internal sealed class DiskReceiver
{
    /// <summary>Virtual sizes a source may ask this host to create (a sparse file or an empty qcow2).</summary>
    private const ulong MaxCapacity = 64UL << 40;

    /// <summary>A copied disk: its backend once attached; for an image created here, the end of the highest range
    /// written so far (beyond it the image still reads as zero, so zero runs there need no work).</summary>
    private sealed class CopiedDisk(ulong capacity, bool created)
    {
        public ulong Capacity => capacity;
        public bool Created => created;
        public IDiskBackend? Backend;
        public ulong HighWater;
    }

    private readonly SortedDictionary<int, CopiedDisk> _copied = [];
    private readonly List<string> _created = [];
    private byte[]? _scratch;
    private bool _unflushed;

    private DiskReceiver()
    {
    }

    /// <summary>For tests: a receiver for already open disks (created: the image was empty before).</summary>
    internal static DiskReceiver ForDisks(IReadOnlyList<(IDiskBackend Disk, bool Created)> disks)
    {
        var receiver = new DiskReceiver();
        for (int i = 0; i < disks.Count; i++)
            receiver._copied.Add(i, new CopiedDisk(disks[i].Disk.Capacity, disks[i].Created));
        receiver.Attach(disks.Select(d => d.Disk).ToList());
        return receiver;
    }

    public IReadOnlyList<string> Created => _created;
    public long BytesWritten { get; private set; }

    /// <summary>Reads the disk table after the 16 fixed Hello bytes; null when the source does not copy storage.
    /// Creates absent images (deleting them again if a later disk is refused).</summary>
    public static DiskReceiver? Prepare(ReadOnlySpan<byte> table, VmSpec config)
    {
        if (table.IsEmpty)
            return null;
        if (table.Length < 4)
            throw new MigrationException("protocol error: short disk table in Hello");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(table);
        if (table.Length != 4 + (long)DiskStreaming.TableEntry * count)
            throw new MigrationException("protocol error: malformed disk table in Hello");
        if (count != config.Disks.Count)
            throw new MigrationException(
                $"the source's guest has {count} disks, this VMM was started with {config.Disks.Count}");
        var receiver = new DiskReceiver();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var entry = table.Slice(4 + i * DiskStreaming.TableEntry, DiskStreaming.TableEntry);
                ulong capacity = BinaryPrimitives.ReadUInt64LittleEndian(entry);
                byte flags = entry[8], format = entry[9];
                if ((flags & ~1) != 0 || format > DiskFormats.Qcow2)
                    throw new MigrationException($"protocol error: disk {i}: flags {flags}, format {format}");
                if ((flags & 1) == 0)
                    continue;
                receiver.PrepareDisk(i, capacity, config.Disks[i], DiskFormats.Name(format), FileIdentity.ReadFrom(entry[10..]));
            }
            return receiver;
        }
        catch
        {
            receiver.RemoveCreated();
            throw;
        }
    }

    private void PrepareDisk(int index, ulong capacity, DiskSpec disk, string sourceFormat, FileIdentity source)
    {
        if (disk.ReadOnly)
            throw new MigrationException($"disk {index} ({disk.Path}) is read-only here, but the source copies it");
        if (capacity == 0 || capacity > MaxCapacity)
            throw new MigrationException($"protocol error: disk {index}: capacity {capacity}");
        if (!File.Exists(disk.Path))
        {
            string format = disk.Format ?? sourceFormat;
            try
            {
                // Registered before creating: a half-written image is removed too.
                _created.Add(disk.Path);
                if (format == "qcow2")
                    ImageCreate.Qcow2(disk.Path, capacity);
                else
                    ImageCreate.Raw(disk.Path, capacity);
            }
            catch (IOException e)
            {
                throw new MigrationException($"cannot create disk {index} ({disk.Path}): {e.Message}", e);
            }
            KilnLog.Info($"copy-storage: created {disk.Path} ({format}, {capacity} bytes)");
            _copied.Add(index, new CopiedDisk(capacity, created: true));
            return;
        }
        if (source.IsKnown && FileIdentity.Of(disk.Path) == source)
            throw new MigrationException(
                $"disk {index} ({disk.Path}) is the source's own image (the same file on this host): copying would write " +
                "under the running guest; give the destination another path, or migrate without copy-storage (shared storage)");
        ulong existing;
        try
        {
            using var image = DiskImage.Open(disk.Path, disk.Format, readOnly: true);
            existing = image.Capacity;
        }
        catch (IOException e)
        {
            throw new MigrationException($"disk {index} ({disk.Path}): {e.Message}", e);
        }
        if (existing != capacity)
            throw new MigrationException(
                $"disk {index} ({disk.Path}) has {existing} bytes here, the source's has {capacity}");
        _copied.Add(index, new CopiedDisk(capacity, created: false));
    }

    /// <summary>Takes the machine's disk backends for the copied disks (the machine opened the images).</summary>
    public void Attach(Machine machine) =>
        Attach(machine.VirtioDevices.OfType<VirtioBlock>().Select(b => b.Disk).ToList());

    /// <summary>The disks in device order.</summary>
    internal void Attach(IReadOnlyList<IDiskBackend> disks)
    {
        foreach (var (index, copied) in _copied)
        {
            var disk = disks[index];
            if (disk.Capacity != copied.Capacity)
                throw new MigrationException($"disk {index}: {disk.Capacity} bytes opened, {copied.Capacity} announced");
            copied.Backend = disk;
        }
    }

    /// <summary>Writes one DiskBlocks frame: u32 disk index, u32 count, then count x (u64 offset, u32 length,
    /// u8 kind: 0 data + length bytes, 1 zero). Every entry is checked before use: a copied disk, a block-aligned
    /// offset, a non-empty range on the disk, data no longer than a block, its bytes inside the frame.</summary>
    public void Apply(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 8)
            throw new MigrationException("protocol error: short DiskBlocks frame");
        uint index = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
        if (index > int.MaxValue || !_copied.TryGetValue((int)index, out var copied) || copied.Backend is not { } disk)
            throw new MigrationException($"protocol error: disk {index} is not a copied disk");
        int at = 8;
        for (uint i = 0; i < count; i++)
        {
            if (payload.Length - at < 13)
                throw new MigrationException("protocol error: truncated DiskBlocks frame");
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(payload[at..]);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(payload[(at + 8)..]);
            byte kind = payload[at + 12];
            at += 13;
            if (offset % DirtyBlockTracker.BlockSize != 0 || length == 0 || offset > disk.Capacity
                || length > disk.Capacity - offset)
                throw new MigrationException(
                    $"protocol error: disk {index}: range [{offset}, +{length}) is not on the disk ({disk.Capacity} bytes)");
            _unflushed = true;
            switch ((DiskBlockKind)kind)
            {
                case DiskBlockKind.Data:
                    if (length > DirtyBlockTracker.BlockSize || payload.Length - at < length)
                        throw new MigrationException("protocol error: truncated or oversized disk block");
                    disk.Write(offset, payload.Slice(at, (int)length));
                    at += (int)length;
                    BytesWritten += length;
                    copied.HighWater = Math.Max(copied.HighWater, offset + length);
                    break;
                case DiskBlockKind.Zero:
                    // A fresh image reads as zero where this migration has not written (the first pass goes
                    // upwards); below that, and anywhere on an image that existed, what is not zero is zeroed.
                    if (!copied.Created || offset < copied.HighWater)
                        ZeroWhereNeeded(disk, offset, length);
                    break;
                default:
                    throw new MigrationException($"protocol error: disk block kind {kind}");
            }
        }
        if (at != payload.Length)
            throw new MigrationException("protocol error: trailing bytes in a DiskBlocks frame");
    }

    /// <summary>Zeroes the parts of the range that do not read as zero already (cheaper than writing zeros over a
    /// raw file's holes).</summary>
    private void ZeroWhereNeeded(IDiskBackend disk, ulong offset, ulong length)
    {
        _scratch ??= new byte[DirtyBlockTracker.BlockSize];
        ulong end = offset + length;
        while (offset < end)
        {
            int n = (int)Math.Min((ulong)_scratch.Length, end - offset);
            bool known = disk is IAllocationMap map && map.IsKnownZero(offset, (ulong)n)
                         || disk is DirtyBlockTracker tracker && tracker.IsKnownZero(offset, (ulong)n);
            if (!known)
            {
                var span = _scratch.AsSpan(0, n);
                disk.Read(offset, span);
                if (span.ContainsAnyExcept((byte)0))
                    disk.WriteZeroes(offset, (ulong)n, mayUnmap: true);
            }
            offset += (ulong)n;
        }
    }

    /// <summary>Makes the received disk content durable before the destination reports Ready.</summary>
    public void Flush()
    {
        foreach (var copied in _copied.Values)
            copied.Backend?.Flush();
        _unflushed = false;
    }

    /// <summary>Flushes when blocks arrived since the last flush: called between rounds, so the flush before Ready
    /// (in the guest's downtime) has only the last round's blocks left to write.</summary>
    public void FlushIfWritten()
    {
        if (_unflushed)
            Flush();
    }

    /// <summary>Best effort: deletes the images this migration created (the machine has closed them).</summary>
    public void RemoveCreated()
    {
        foreach (string path in _created)
        {
            try
            {
                File.Delete(path);
                KilnLog.Info($"copy-storage: removed {path}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                KilnLog.Warn($"copy-storage: cannot remove {path}: {e.Message}");
            }
        }
        _created.Clear();
    }
}
