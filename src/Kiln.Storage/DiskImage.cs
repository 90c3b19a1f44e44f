using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>Opens a disk image of any supported format. Without a format, qcow2 is recognised by its magic; an
/// image the caller calls raw is never probed. Backing chains are opened read-only, to any depth, with loops
/// (by canonical path) refused.</summary>
public static class DiskImage
{
    public static IDiskBackend Open(string path, string? format, bool readOnly) =>
        Open(path, format, readOnly, []);

    /// <summary>"qcow2" or "raw", from the file's first bytes.</summary>
    public static string Probe(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            var magic = new byte[4];
            int n = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
            return n == 4 && Qcow2HeaderParser.HasMagic(magic) ? "qcow2" : "raw";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.OpenFailed(path, e);
        }
    }

    private static IDiskBackend Open(string path, string? format, bool readOnly, List<string> chain)
    {
        string canonical = BackingChain.Canonical(path);
        if (chain.Contains(canonical))
            throw new ImageFormatException($"{path}: backing file loop: {string.Join(" -> ", chain)} -> {canonical}");
        if (chain.Count >= BackingChain.MaxDepth)
            throw new ImageFormatException($"{path}: backing chain is deeper than {BackingChain.MaxDepth} images");
        chain.Add(canonical);
        format ??= Probe(path);
        return format switch
        {
            "raw" => RawDiskBackend.Open(path, readOnly),
            "qcow2" => Qcow2Disk.Open(path, readOnly, (backing, backingFormat) => Open(backing, backingFormat, true, chain)),
            _ => throw new ImageFormatException($"{path}: unsupported image format '{format}' (raw or qcow2)"),
        };
    }
}
