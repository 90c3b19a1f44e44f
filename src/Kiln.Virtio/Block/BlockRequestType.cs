namespace Kiln.Virtio.Block;

/// <summary>virtio-blk request types and status codes (virtio 1.x section 5.2.6).</summary>
internal static class BlockRequest
{
    public const uint In = 0;
    public const uint Out = 1;
    public const uint Flush = 4;
    public const uint GetId = 8;
    public const uint Discard = 11;
    public const uint WriteZeroes = 13;

    public const byte StatusOk = 0;
    public const byte StatusIoErr = 1;
    public const byte StatusUnsupported = 2;

    public const int HeaderSize = 16;
    public const int SectorSize = 512;
    public const int SectorShift = 9;
    public const int IdLength = 20;

    /// <summary>One discard / write-zeroes range: le64 sector, le32 num_sectors, le32 flags (bit 0: unmap).</summary>
    public const int RangeSize = 16;
    public const uint RangeFlagUnmap = 1;
}
