using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>`kiln img convert`: copies an image (through its backing chain) into a new raw or qcow2 image, skipping
/// chunks that read as zero so the destination stays sparse.</summary>
public static class ImageConvert
{
    public static void Run(string source, string? sourceFormat, string destination, string destinationFormat,
        int clusterSize = ImageCreate.DefaultClusterSize, Action<double>? progress = null)
    {
        if (destinationFormat is not ("raw" or "qcow2"))
            throw new ImageFormatException($"{destination}: unsupported output format '{destinationFormat}' (raw or qcow2)");
        if (BackingChain.Canonical(source) == BackingChain.Canonical(destination))
            throw new DiskException($"{destination}: the destination is the source");
        using var input = DiskImage.Open(source, sourceFormat, readOnly: true);
        if (File.Exists(destination))
            File.Delete(destination);
        ulong size = input.Capacity;
        IDiskBackend output;
        if (destinationFormat == "raw")
        {
            ImageCreate.Raw(destination, size);
            output = RawDiskBackend.Open(destination, readOnly: false);
        }
        else
        {
            ImageCreate.Qcow2(destination, size, clusterSize);
            var disk = Qcow2Disk.Open(destination, readOnly: false, null);
            disk.OrderedSync = false; // a fresh image: a crash loses the whole conversion anyway
            output = disk;
        }
        using (output)
        {
            int chunk = Math.Max(clusterSize, 1 << 20);
            var buffer = new byte[chunk];
            for (ulong offset = 0; offset < size; offset += (ulong)chunk)
            {
                int n = (int)Math.Min((ulong)chunk, size - offset);
                var span = buffer.AsSpan(0, n);
                input.Read(offset, span);
                for (int at = 0; at < n; at += clusterSize)
                {
                    var piece = span.Slice(at, Math.Min(clusterSize, n - at));
                    if (piece.ContainsAnyExcept((byte)0))
                        output.Write(offset + (ulong)at, piece);
                }
                progress?.Invoke(100.0 * (offset + (ulong)n) / size);
            }
            output.Flush();
        }
    }
}
