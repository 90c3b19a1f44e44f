using System.Buffers.Binary;
using System.Text;
using Kiln.Memory;
using Kiln.Storage;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio.Block;

/// <summary>virtio-blk over an <see cref="IDiskBackend"/>: read, write, flush, discard, write-zeroes and GET_ID on one
/// request queue. Host I/O errors and out-of-range sectors answer VIRTIO_BLK_S_IOERR, unknown request types
/// VIRTIO_BLK_S_UNSUPP; a malformed request layout (no 16-byte readable header, no writable status byte) is a protocol
/// violation and puts the device into DEVICE_NEEDS_RESET.</summary>
public sealed class VirtioBlock : VirtioDevice
{
    public const ushort QueueSize = 256;

    private readonly IDiskBackend _disk;
    private readonly byte[] _config;
    private readonly byte[] _id = new byte[BlockRequest.IdLength];
    private readonly ulong _capacitySectors;
    private readonly RingPoller _poller = new();
    private byte[]? _bounce;

    /// <param name="serial">Returned by GET_ID (at most 20 bytes, shown as /sys/block/vdX/serial).</param>
    public VirtioBlock(GuestMemory memory, IDiskBackend disk, string? serial = null) : base(memory, 1, QueueSize)
    {
        _disk = disk;
        _capacitySectors = disk.Capacity >> BlockRequest.SectorShift;
        _config = BlockConfig.Build(_capacitySectors, QueueSize - 2);
        if (serial is not null)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(serial);
            bytes.AsSpan(0, Math.Min(bytes.Length, _id.Length)).CopyTo(_id);
        }
    }

    public override VirtioDeviceType DeviceType => VirtioDeviceType.Block;
    public override string Name => "virtio-blk";
    public BlockMetrics Metrics { get; } = new();
    public IDiskBackend Disk => _disk;

    protected override ulong DeviceSpecificFeatures =>
        BlockFeatures.SegMax | BlockFeatures.BlkSize | BlockFeatures.Flush
        | (_disk.IsReadOnly ? BlockFeatures.ReadOnly : BlockFeatures.Discard | BlockFeatures.WriteZeroes);

    public override int ConfigSize => BlockConfig.Size;

    public override void ReadConfig(int offset, Span<byte> data) => _config.AsSpan(offset, data.Length).CopyTo(data);

    /// <summary>Requests complete one by one, each with its interrupt (if the driver wants one); the ring is polled
    /// briefly after each (<see cref="RingPoller"/>), so back-to-back requests need no notification.</summary>
    protected override void ProcessQueue(int index, Virtqueue queue) =>
        _poller.Serve(queue, Memory, chain =>
        {
            uint written = Handle(chain);
            queue.AddUsed(Memory, chain.Head, written);
            NotifyQueue(index, queue);
        });

    /// <summary>Executes one request and writes its status; returns the bytes written into the chain.</summary>
    private uint Handle(DescriptorChain chain)
    {
        if (chain.ReadableLength < BlockRequest.HeaderSize)
            throw new VirtioProtocolException($"request without a {BlockRequest.HeaderSize}-byte device-readable header");
        if (chain.WritableLength == 0)
            throw new VirtioProtocolException("request without a device-writable status byte");
        Span<byte> header = stackalloc byte[BlockRequest.HeaderSize];
        chain.Read(Memory, 0, header);
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(header);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        ulong statusOffset = chain.WritableLength - 1;
        uint dataWritten = 0;
        byte status;
        try
        {
            status = type switch
            {
                BlockRequest.In => ReadSectors(chain, sector, statusOffset, out dataWritten),
                BlockRequest.Out => WriteSectors(chain, sector),
                BlockRequest.Flush => Flush(),
                BlockRequest.GetId => GetId(chain, statusOffset, out dataWritten),
                BlockRequest.Discard or BlockRequest.WriteZeroes => DiscardOrZero(chain, type),
                _ => Unsupported(),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            status = BlockRequest.StatusIoErr;
            dataWritten = 0;
        }
        if (status == BlockRequest.StatusIoErr)
            Interlocked.Increment(ref Metrics.IoErrorsValue);
        chain.Write(Memory, statusOffset, [status]);
        return dataWritten + 1;
    }

    /// <summary>Whether [sector, sector + bytes/512) lies on the disk; written so it cannot overflow.</summary>
    private bool InRange(ulong sector, ulong bytes) =>
        bytes % BlockRequest.SectorSize == 0 && sector <= _capacitySectors
        && bytes >> BlockRequest.SectorShift <= _capacitySectors - sector;

    private byte ReadSectors(DescriptorChain chain, ulong sector, ulong length, out uint written)
    {
        written = 0;
        if (!InRange(sector, length))
            return BlockRequest.StatusIoErr;
        ulong offset = sector << BlockRequest.SectorShift;
        foreach (var (address, size) in chain.Pieces(true, 0, length))
        {
            if (Memory.TryGetSpan(address, size, out var span))
                _disk.Read(offset, span);
            else
            {
                var bounce = Bounce(size);
                _disk.Read(offset, bounce);
                Memory.Write(address, bounce);
            }
            offset += (ulong)size;
        }
        written = (uint)length;
        Interlocked.Add(ref Metrics.ReadBytesValue, (long)length);
        Interlocked.Increment(ref Metrics.ReadRequestsValue);
        return BlockRequest.StatusOk;
    }

    private byte WriteSectors(DescriptorChain chain, ulong sector)
    {
        ulong length = chain.ReadableLength - BlockRequest.HeaderSize;
        if (_disk.IsReadOnly || !InRange(sector, length))
            return BlockRequest.StatusIoErr;
        ulong offset = sector << BlockRequest.SectorShift;
        foreach (var (address, size) in chain.Pieces(false, BlockRequest.HeaderSize, length))
        {
            if (Memory.TryGetSpan(address, size, out var span))
                _disk.Write(offset, span);
            else
            {
                var bounce = Bounce(size);
                Memory.Read(address, bounce);
                _disk.Write(offset, bounce);
            }
            offset += (ulong)size;
        }
        Interlocked.Add(ref Metrics.WriteBytesValue, (long)length);
        Interlocked.Increment(ref Metrics.WriteRequestsValue);
        return BlockRequest.StatusOk;
    }

    private byte Flush()
    {
        _disk.Flush();
        Interlocked.Increment(ref Metrics.FlushesValue);
        return BlockRequest.StatusOk;
    }

    private byte GetId(DescriptorChain chain, ulong available, out uint written)
    {
        int n = (int)Math.Min(available, (ulong)_id.Length);
        written = (uint)chain.Write(Memory, 0, _id.AsSpan(0, n));
        return BlockRequest.StatusOk;
    }

    private byte DiscardOrZero(DescriptorChain chain, uint type)
    {
        if (_disk.IsReadOnly)
            return BlockRequest.StatusIoErr;
        ulong length = chain.ReadableLength - BlockRequest.HeaderSize;
        if (length == 0 || length % BlockRequest.RangeSize != 0 || length / BlockRequest.RangeSize > BlockConfig.MaxDiscardSegments)
            return BlockRequest.StatusIoErr;
        Span<byte> ranges = stackalloc byte[(int)length];
        chain.Read(Memory, BlockRequest.HeaderSize, ranges);
        // Validate every range before touching the disk, so a bad one leaves the disk unchanged.
        for (int i = 0; i < ranges.Length; i += BlockRequest.RangeSize)
        {
            var (sector, count, flags) = DecodeRange(ranges[i..]);
            uint allowed = type == BlockRequest.WriteZeroes ? BlockRequest.RangeFlagUnmap : 0;
            if ((flags & ~allowed) != 0)
                return Unsupported();
            if (count > BlockConfig.MaxDiscardSectors || !InRange(sector, (ulong)count << BlockRequest.SectorShift))
                return BlockRequest.StatusIoErr;
        }
        for (int i = 0; i < ranges.Length; i += BlockRequest.RangeSize)
        {
            var (sector, count, flags) = DecodeRange(ranges[i..]);
            ulong offset = sector << BlockRequest.SectorShift, bytes = (ulong)count << BlockRequest.SectorShift;
            if (type == BlockRequest.Discard)
                _disk.Discard(offset, bytes);
            else
                _disk.WriteZeroes(offset, bytes, (flags & BlockRequest.RangeFlagUnmap) != 0);
        }
        Interlocked.Increment(ref Metrics.DiscardsValue);
        return BlockRequest.StatusOk;
    }

    private static (ulong Sector, uint Count, uint Flags) DecodeRange(ReadOnlySpan<byte> r) =>
        (BinaryPrimitives.ReadUInt64LittleEndian(r), BinaryPrimitives.ReadUInt32LittleEndian(r[8..]),
         BinaryPrimitives.ReadUInt32LittleEndian(r[12..]));

    private byte Unsupported()
    {
        Interlocked.Increment(ref Metrics.UnsupportedValue);
        return BlockRequest.StatusUnsupported;
    }

    private Span<byte> Bounce(int size)
    {
        if (_bounce is null || _bounce.Length < size)
            _bounce = new byte[Math.Max(size, 64 * 1024)];
        return _bounce.AsSpan(0, size);
    }

    public override void Dispose()
    {
        base.Dispose();
        _disk.Dispose();
    }
}
