using System.IO.Compression;

namespace Kiln.Storage.Qcow2;

/// <summary>Inflates one compressed cluster: a raw deflate stream (no zlib header) that must yield exactly one
/// cluster. The descriptor's sector count only bounds the input; the last cluster's stream may end at EOF.</summary>
internal static class CompressedCluster
{
    public static void Read(ImageFile file, L2Entry entry, Span<byte> cluster)
    {
        if (entry.HostOffset >= file.Length)
            throw new ImageFormatException($"{file.Path}: compressed cluster at {entry.HostOffset} lies past the end of the file");
        ulong length = Math.Min(entry.CompressedLength, file.Length - entry.HostOffset);
        var input = new byte[length];
        file.ReadAvailable(entry.HostOffset, input);
        try
        {
            using var inflate = new DeflateStream(new MemoryStream(input), CompressionMode.Decompress);
            int total = 0;
            while (total < cluster.Length)
            {
                int n = inflate.Read(cluster[total..]);
                if (n == 0)
                    break;
                total += n;
            }
            if (total != cluster.Length)
                throw new ImageFormatException($"{file.Path}: compressed cluster at {entry.HostOffset} inflates to {total} bytes, not {cluster.Length}");
        }
        catch (InvalidDataException e)
        {
            throw new ImageFormatException($"{file.Path}: compressed cluster at {entry.HostOffset} is not a valid deflate stream", e);
        }
    }
}
