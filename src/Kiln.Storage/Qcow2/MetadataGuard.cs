namespace Kiln.Storage.Qcow2;

/// <summary>Checks a host offset taken from an L1, L2 or refcount table entry before it is used: cluster-aligned,
/// inside the file, and not inside the header cluster, the L1 table or the refcount table. A hostile image whose
/// entries point elsewhere gets an <see cref="ImageFormatException"/>, never a read or write there.</summary>
internal sealed class MetadataGuard(ImageFile file, int clusterBits)
{
    public ulong L1Offset { get; set; }
    public ulong L1Bytes { get; set; }
    public ulong RefcountTableOffset { get; set; }
    public ulong RefcountTableBytes { get; set; }

    public void Check(ulong offset, string what)
    {
        ulong clusterSize = 1UL << clusterBits;
        if (offset % clusterSize != 0)
            throw new ImageFormatException($"{file.Path}: {what} offset {offset} is not cluster-aligned");
        if (offset < clusterSize)
            throw new ImageFormatException($"{file.Path}: {what} points into the header cluster");
        if (offset >= file.Length)
            throw new ImageFormatException($"{file.Path}: {what} offset {offset} lies past the end of the file ({file.Length} bytes)");
        if (L1Bytes > 0 && offset + clusterSize > L1Offset && offset < L1Offset + L1Bytes)
            throw new ImageFormatException($"{file.Path}: {what} offset {offset} points into the L1 table");
        if (offset + clusterSize > RefcountTableOffset && offset < RefcountTableOffset + RefcountTableBytes)
            throw new ImageFormatException($"{file.Path}: {what} offset {offset} points into the refcount table");
    }
}
