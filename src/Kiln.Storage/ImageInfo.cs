using System.Text;
using System.Text.Json;
using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>`kiln img info`: what qemu-img info reports — format, sizes, cluster size, backing file — for an image
/// and (on request) each image of its backing chain.</summary>
public sealed record ImageInfo(string Filename, string Format, ulong VirtualSize, ulong ActualSize, Qcow2Header? Qcow2,
    string? BackingFilename, string? FullBackingFilename, string? BackingFormat)
{
    public ulong? ClusterSize => Qcow2?.ClusterSize;

    public static ImageInfo Read(string path, string? format = null)
    {
        format ??= DiskImage.Probe(path);
        ulong actual = (ulong)new FileInfo(path).Length;
        if (format == "raw")
        {
            using var raw = RawDiskBackend.Open(path, readOnly: true);
            return new ImageInfo(path, "raw", raw.Capacity, actual, null, null, null, null);
        }
        if (format != "qcow2")
            throw new ImageFormatException($"{path}: unsupported image format '{format}'");
        using var file = ImageFile.Open(path, readOnly: true);
        var header = Qcow2HeaderParser.Read(file);
        string? full = header.BackingFile is { } b ? BackingChain.Resolve(path, b) : null;
        return new ImageInfo(path, "qcow2", header.Size, actual, header, header.BackingFile, full, header.BackingFormat);
    }

    /// <summary>The image and its backing files, overlay first; loops are refused.</summary>
    public static List<ImageInfo> ReadChain(string path, string? format = null)
    {
        var chain = new List<ImageInfo>();
        var seen = new HashSet<string>();
        string? next = path;
        while (next is not null)
        {
            if (!seen.Add(BackingChain.Canonical(next)))
                throw new ImageFormatException($"{path}: backing file loop at {next}");
            if (chain.Count >= BackingChain.MaxDepth)
                throw new ImageFormatException($"{path}: backing chain is deeper than {BackingChain.MaxDepth} images");
            var info = Read(next, format);
            chain.Add(info);
            next = info.FullBackingFilename;
            format = info.BackingFormat;
        }
        return chain;
    }

    public string ToText()
    {
        var s = new StringBuilder();
        s.Append($"image: {Filename}\nfile format: {Format}\nvirtual size: {Human(VirtualSize)} ({VirtualSize} bytes)\n");
        s.Append($"disk size: {Human(ActualSize)}\n");
        if (Qcow2 is { } h)
        {
            s.Append($"cluster_size: {h.ClusterSize}\n");
            if (BackingFilename is not null)
            {
                s.Append($"backing file: {BackingFilename}");
                s.Append(FullBackingFilename != BackingFilename ? $" (actual path: {FullBackingFilename})\n" : "\n");
            }
            if (BackingFormat is not null)
                s.Append($"backing file format: {BackingFormat}\n");
            s.Append("Format specific information:\n");
            s.Append($"    compat: {(h.Version == 2 ? "0.10" : "1.1")}\n");
            s.Append("    compression type: zlib\n");
            s.Append($"    lazy refcounts: {(h.LazyRefcounts ? "true" : "false")}\n");
            s.Append($"    refcount bits: {h.RefcountBits}\n");
            s.Append($"    corrupt: {(h.IsCorrupt ? "true" : "false")}\n");
            s.Append("    extended l2: false\n");
        }
        return s.ToString();
    }

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("virtual-size", VirtualSize);
        w.WriteString("filename", Filename);
        if (Qcow2 is { } h)
            w.WriteNumber("cluster-size", h.ClusterSize);
        w.WriteString("format", Format);
        w.WriteNumber("actual-size", ActualSize);
        if (Qcow2 is { } q)
        {
            w.WriteStartObject("format-specific");
            w.WriteString("type", "qcow2");
            w.WriteStartObject("data");
            w.WriteString("compat", q.Version == 2 ? "0.10" : "1.1");
            w.WriteString("compression-type", "zlib");
            w.WriteBoolean("lazy-refcounts", q.LazyRefcounts);
            w.WriteNumber("refcount-bits", q.RefcountBits);
            w.WriteBoolean("corrupt", q.IsCorrupt);
            w.WriteBoolean("extended-l2", false);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        if (BackingFilename is not null)
        {
            w.WriteString("backing-filename", BackingFilename);
            w.WriteString("full-backing-filename", FullBackingFilename);
        }
        if (BackingFormat is not null)
            w.WriteString("backing-filename-format", BackingFormat);
        w.WriteBoolean("dirty-flag", Qcow2?.IsDirty ?? false);
        w.WriteEndObject();
    }

    public static string ToJson(IReadOnlyList<ImageInfo> infos, bool asArray)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            if (asArray)
                w.WriteStartArray();
            foreach (var info in asArray ? infos : infos.Take(1))
                info.WriteJson(w);
            if (asArray)
                w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string Human(ulong bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return u == 0 ? $"{bytes} B" : $"{v:0.###} {units[u]}";
    }
}
