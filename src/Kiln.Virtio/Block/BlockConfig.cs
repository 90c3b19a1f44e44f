using System.Buffers.Binary;

namespace Kiln.Virtio.Block;

/// <summary>The virtio-blk configuration space (struct virtio_blk_config, 60 bytes), built once from the disk.</summary>
internal static class BlockConfig
{
    public const int Size = 60;
    public const uint MaxDiscardSectors = 1u << 22;  // 2 GiB per range
    public const uint MaxDiscardSegments = 16;

    public static byte[] Build(ulong capacitySectors, uint segMax)
    {
        var c = new byte[Size];
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(0), capacitySectors);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(12), segMax);              // seg_max
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(20), BlockRequest.SectorSize); // blk_size
        BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(34), 1);                   // num_queues
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(36), MaxDiscardSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(40), MaxDiscardSegments);
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(44), 1);                   // discard_sector_alignment
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(48), MaxDiscardSectors);   // max_write_zeroes_sectors
        BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(52), MaxDiscardSegments);  // max_write_zeroes_seg
        c[56] = 1;                                                                  // write_zeroes_may_unmap
        return c;
    }
}
