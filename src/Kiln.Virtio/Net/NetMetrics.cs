namespace Kiln.Virtio.Net;

/// <summary>Counters for one virtio-net device (read by monitoring; written by the worker).</summary>
public sealed class NetMetrics
{
    internal long RxPacketsValue, RxBytesValue, RxDroppedValue, TxPacketsValue, TxBytesValue, TxDroppedValue;

    /// <summary>Frames delivered to the guest, and their Ethernet bytes (headers excluded).</summary>
    public long RxPackets => Interlocked.Read(ref RxPacketsValue);
    public long RxBytes => Interlocked.Read(ref RxBytesValue);

    /// <summary>Frames from the backend the guest could not take (buffer too small, malformed, link down).</summary>
    public long RxDropped => Interlocked.Read(ref RxDroppedValue);

    /// <summary>Frames the guest sent that reached the backend, and their Ethernet bytes.</summary>
    public long TxPackets => Interlocked.Read(ref TxPacketsValue);
    public long TxBytes => Interlocked.Read(ref TxBytesValue);

    /// <summary>Frames the guest sent that were dropped (backend full or down, offload not negotiated).</summary>
    public long TxDropped => Interlocked.Read(ref TxDroppedValue);
}
