namespace Kiln.Virtio.Block;

/// <summary>Counters for one virtio-blk device (read by monitoring; written only by the worker).</summary>
public sealed class BlockMetrics
{
    internal long ReadBytesValue, WriteBytesValue, FlushesValue, DiscardsValue, IoErrorsValue, UnsupportedValue;
    internal long ReadRequestsValue, WriteRequestsValue;

    /// <summary>Read and write requests completed successfully (for domstats).</summary>
    public long ReadRequests => Interlocked.Read(ref ReadRequestsValue);
    public long WriteRequests => Interlocked.Read(ref WriteRequestsValue);

    public long ReadBytes => Interlocked.Read(ref ReadBytesValue);
    public long WriteBytes => Interlocked.Read(ref WriteBytesValue);
    public long Flushes => Interlocked.Read(ref FlushesValue);
    public long Discards => Interlocked.Read(ref DiscardsValue);

    /// <summary>Requests answered VIRTIO_BLK_S_IOERR (host errors, out-of-range sectors, writes to a read-only disk).</summary>
    public long IoErrors => Interlocked.Read(ref IoErrorsValue);

    /// <summary>Requests answered VIRTIO_BLK_S_UNSUPP.</summary>
    public long Unsupported => Interlocked.Read(ref UnsupportedValue);
}
