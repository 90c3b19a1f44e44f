namespace Kiln.Storage;

/// <summary>A backend that knows, from its metadata alone, where it holds no data (qcow2: unallocated clusters
/// without a backing file under them, zero clusters). Copying a disk skips such ranges without reading them.</summary>
public interface IAllocationMap
{
    /// <summary>True when every byte of [offset, offset+length) reads as zero, decided without reading data. False
    /// means "may hold data", not "holds data".</summary>
    bool IsKnownZero(ulong offset, ulong length);
}
