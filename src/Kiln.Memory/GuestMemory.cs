using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kiln.Kvm;

namespace Kiln.Memory;

/// <summary>All of a guest's RAM: regions sorted by address, with bounds-checked reads and writes.
/// Every guest-controlled address reaches host memory only through <see cref="TryGetSpan"/>'s checks.</summary>
public sealed class GuestMemory : IDisposable
{
    private readonly GuestRegion[] _regions;

    /// <summary>Non-null while a live migration tracks dirty pages: every write made through this object (and every
    /// range a device reports with <see cref="MarkWritten"/>) is recorded there, after the write.</summary>
    private volatile VmmWriteLog? _writeLog;

    private GuestMemory(GuestRegion[] regions) => _regions = regions;

    public IReadOnlyList<GuestRegion> Regions => _regions;

    public ulong TotalSize => _regions.Aggregate(0UL, (sum, r) => sum + r.Size);

    /// <summary>Maps regions at the given (start, size) pairs; they must not overlap.</summary>
    public static GuestMemory Create(IEnumerable<(GuestAddress Start, ulong Size)> layout) =>
        Build(layout.Select(r => (r.Start, r.Size, -1L)), fd: -1);

    /// <summary>Maps each region copy-on-write from [FileOffset, FileOffset+Size) of <paramref name="file"/> (see
    /// the file-backed <see cref="GuestRegion"/>): a snapshot's RAM becomes the guest's RAM without being read.
    /// The file may be closed afterwards; it must not be changed while the memory lives.</summary>
    public static GuestMemory MapFile(Microsoft.Win32.SafeHandles.SafeFileHandle file,
        IEnumerable<(GuestAddress Start, ulong Size, long FileOffset)> layout)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            return Build(layout, (int)file.DangerousGetHandle());
        }
        finally
        {
            if (added)
                file.DangerousRelease();
        }
    }

    private static GuestMemory Build(IEnumerable<(GuestAddress Start, ulong Size, long FileOffset)> layout, int fd)
    {
        var sorted = layout.OrderBy(r => r.Start.Value).ToArray();
        for (int i = 0; i < sorted.Length; i++)
            if (sorted[i].Start.Value + sorted[i].Size < sorted[i].Start.Value
                || (i > 0 && sorted[i - 1].Start.Value + sorted[i - 1].Size > sorted[i].Start.Value))
                throw new GuestMemoryException($"memory regions overlap at {sorted[i].Start}");
        var regions = new List<GuestRegion>();
        try
        {
            foreach (var (start, size, offset) in sorted)
                regions.Add(fd < 0 ? new GuestRegion(start, size) : new GuestRegion(start, size, fd, offset));
        }
        catch
        {
            regions.ForEach(r => r.Dispose());
            throw;
        }
        return new GuestMemory([.. regions]);
    }

    /// <summary>Hands every region to KVM as a memory slot, numbered from 0.</summary>
    public void RegisterWith(VirtualMachine vm, uint flags = 0)
    {
        for (int i = 0; i < _regions.Length; i++)
            vm.SetUserMemoryRegion((uint)i, _regions[i].Start.Value, _regions[i].Size, _regions[i].HostAddress, flags);
    }

    public GuestRegion? FindRegion(GuestAddress address)
    {
        foreach (var r in _regions)
            if (r.Contains(address, 1))
                return r;
        return null;
    }

    /// <summary>True when all of [address, address+length) is RAM (possibly across adjacent regions).</summary>
    public bool IsValid(GuestAddress address, ulong length)
    {
        while (true)
        {
            var region = FindRegion(address);
            if (region is null)
                return length == 0 && _regions.Any(r => r.End == address);
            ulong available = region.End.Value - address.Value;
            if (length <= available)
                return true;
            length -= available;
            address = region.End;
        }
    }

    /// <summary>A span over [address, address+length) if it lies inside one region; the safe path for device
    /// code that wants zero-copy access to a guest buffer.</summary>
    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        if (length >= 0 && TryLocate(address, length, out int region))
        {
            span = _regions[region].Slice(address, length);
            return true;
        }
        span = default;
        return false;
    }

    public Span<byte> GetSpan(GuestAddress address, int length) =>
        TryGetSpan(address, length, out var span) ? span : throw OutOfRange(address, (ulong)Math.Max(length, 0));

    public void Read(GuestAddress address, Span<byte> destination)
    {
        CheckRange(address, destination.Length);
        for (int done = 0; done < destination.Length;)
        {
            var chunk = ChunkAt(address + (ulong)done, destination.Length - done, out _);
            chunk.CopyTo(destination.Slice(done));
            done += chunk.Length;
        }
    }

    public void Write(GuestAddress address, ReadOnlySpan<byte> source)
    {
        CheckRange(address, source.Length);
        for (int done = 0; done < source.Length;)
        {
            var at = address + (ulong)done;
            var chunk = ChunkAt(at, source.Length - done, out int region);
            source.Slice(done, chunk.Length).CopyTo(chunk);
            _writeLog?.Mark(region, at.Value - _regions[region].Start.Value, (ulong)chunk.Length);
            done += chunk.Length;
        }
    }

    /// <summary>True while writes are being logged for a live migration: a device that wrote guest RAM through a span
    /// (<see cref="TryGetSpan"/>) then reports the range with <see cref="MarkWritten"/>.</summary>
    public bool IsLoggingWrites => _writeLog is not null;

    /// <summary>Records that the VMM wrote [address, address+length) through a span, so a live migration sends those
    /// pages again. Call it after the write. Parts of the range outside guest RAM are ignored.</summary>
    public void MarkWritten(GuestAddress address, ulong length)
    {
        var log = _writeLog;
        if (log is null || length == 0)
            return;
        for (int i = 0; i < _regions.Length; i++)
        {
            var r = _regions[i];
            // The overlap of [address, address+length) with the region, computed without overflow.
            ulong start = Math.Max(address.Value, r.Start.Value);
            ulong end = address.Value + length < address.Value ? ulong.MaxValue : address.Value + length;
            end = Math.Min(end, r.End.Value);
            if (start < end)
                log.Mark(i, start - r.Start.Value, end - start);
        }
    }

    /// <summary>Starts logging the VMM's own writes (for <see cref="DirtyPageTracker"/>); returns the log.</summary>
    internal VmmWriteLog StartWriteLog()
    {
        var log = new VmmWriteLog(_regions);
        _writeLog = log;
        return log;
    }

    internal void StopWriteLog() => _writeLog = null;

    /// <summary>Reads a value with one load when it lies in one region (always, for a naturally aligned field), so a
    /// field the guest updates concurrently (a ring index) is never seen half old, half new.</summary>
    public T Read<T>(GuestAddress address) where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (TryLocate(address, size, out int region))
            // SAFETY: Slice checked that [address, address + size) lies in the region; ReadUnaligned reads exactly size bytes there.
            return Unsafe.ReadUnaligned<T>(ref MemoryMarshal.GetReference(_regions[region].Slice(address, size)));
        Span<byte> buffer = stackalloc byte[size]; // across regions (or out of RAM, which Read reports)
        Read(address, buffer);
        return MemoryMarshal.Read<T>(buffer);
    }

    /// <summary>Writes a value with one store when it lies in one region. A byte-wise copy is not enough for fields the
    /// guest reads concurrently: the runtime's copy of 2 bytes stores the first byte, then both, so a driver polling a
    /// used index could see it step back by 255 as it crosses a multiple of 256 (and then consume stale entries).</summary>
    public void Write<T>(GuestAddress address, T value) where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (TryLocate(address, size, out int region))
        {
            // SAFETY: Slice checked that [address, address + size) lies in the region; WriteUnaligned writes exactly size bytes there.
            Unsafe.WriteUnaligned(ref MemoryMarshal.GetReference(_regions[region].Slice(address, size)), value);
            _writeLog?.Mark(region, address.Value - _regions[region].Start.Value, (ulong)size);
            return;
        }
        Span<byte> buffer = stackalloc byte[size];
        MemoryMarshal.Write(buffer, in value);
        Write(address, buffer);
    }

    /// <summary>The index of the region holding all of [address, address+length), if one does.</summary>
    private bool TryLocate(GuestAddress address, int length, out int region)
    {
        for (region = 0; region < _regions.Length; region++)
            if (_regions[region].Contains(address, (ulong)length))
                return true;
        return false;
    }

    public void Fill(GuestAddress address, ulong length, byte value)
    {
        if (!IsValid(address, length))
            throw OutOfRange(address, length);
        while (length > 0)
        {
            var chunk = ChunkAt(address, (int)Math.Min(length, 1 << 20), out int region);
            chunk.Fill(value);
            _writeLog?.Mark(region, address.Value - _regions[region].Start.Value, (ulong)chunk.Length);
            address += (ulong)chunk.Length;
            length -= (ulong)chunk.Length;
        }
    }

    private void CheckRange(GuestAddress address, int length)
    {
        if (!IsValid(address, (ulong)length))
            throw OutOfRange(address, (ulong)length);
    }

    /// <summary>The part of an already-validated range that lies in the region holding its first byte.</summary>
    private Span<byte> ChunkAt(GuestAddress address, int length, out int regionIndex)
    {
        regionIndex = 0;
        while (!_regions[regionIndex].Contains(address, 1))
            regionIndex++;
        var region = _regions[regionIndex];
        return region.Slice(address, (int)Math.Min((ulong)length, region.End.Value - address.Value));
    }

    private static GuestMemoryException OutOfRange(GuestAddress address, ulong length) =>
        new($"guest access [{address}, +{length:#,0}) is outside guest RAM");

    public void Dispose()
    {
        foreach (var r in _regions)
            r.Dispose();
    }
}
