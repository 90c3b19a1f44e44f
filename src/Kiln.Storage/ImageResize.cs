using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>`kiln img resize`: grows a raw file (sparse) or a qcow2 image's virtual size (moving its L1 table to a
/// larger one when the new size needs more entries). Shrinking is refused.</summary>
public static class ImageResize
{
    public static ulong Run(string path, string? format, ulong? absolute, ulong? delta)
    {
        format ??= DiskImage.Probe(path);
        using var disk = DiskImage.Open(path, format, readOnly: false);
        ulong newSize = absolute ?? checked(disk.Capacity + delta!.Value);
        if (newSize < disk.Capacity)
            throw new DiskException($"{path}: shrinking is not supported ({disk.Capacity} -> {newSize} bytes)");
        switch (disk)
        {
            case Qcow2Disk q:
                q.Resize(newSize);
                break;
            case RawDiskBackend:
                using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
                    stream.SetLength((long)newSize);
                break;
        }
        return newSize;
    }
}
