using Kiln.Storage;
using Kiln.Storage.Qcow2;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>Images made by qemu-img read through Kiln equal `qemu-img convert -O raw` byte for byte.</summary>
public sealed class Qcow2ReadTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private void AssertReadsLikeQemu(string image)
    {
        using var disk = DiskImage.Open(image, null, readOnly: true);
        Assert.IsType<Qcow2Disk>(disk);
        Assert.Equal(_files.QemuRaw(image), ReadAll(disk));
    }

    /// <summary>A raw file with data, holes and zero runs, 3 MiB + an odd tail.</summary>
    private string MakeRaw(string name, int seed)
    {
        var data = Random(3 << 20 | 4096, seed);
        data.AsSpan(1 << 20, 512 << 10).Clear();
        File.WriteAllBytes(_files[name], data);
        return _files[name];
    }

    [Theory]
    [InlineData("4096")]
    [InlineData("65536")]
    [InlineData("2M")]
    public void ClusterSizes(string clusterSize)
    {
        string raw = MakeRaw("src.raw", 1);
        QemuImg("convert", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", raw, _files["img.qcow2"]);
        AssertReadsLikeQemu(_files["img.qcow2"]);
    }

    [Theory]
    [InlineData("4096")]
    [InlineData("65536")]
    public void CompressedClusters(string clusterSize)
    {
        string raw = MakeRaw("src.raw", 2);
        var text = new byte[1 << 20];
        for (int i = 0; i < text.Length; i++)
            text[i] = (byte)"compressible text "[i % 18];
        using (var f = new FileStream(raw, FileMode.Open))
        {
            f.Position = 2 << 20;
            f.Write(text);
        }
        QemuImg("convert", "-c", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", raw, _files["img.qcow2"]);
        AssertReadsLikeQemu(_files["img.qcow2"]);
        using var disk = DiskImage.Open(_files["img.qcow2"], null, readOnly: true);
        Assert.Equal(File.ReadAllBytes(raw), ReadAll(disk));
    }

    [Fact]
    public void Version2Image()
    {
        string raw = MakeRaw("src.raw", 3);
        QemuImg("convert", "-O", "qcow2", "-o", "compat=0.10", raw, _files["v2.qcow2"]);
        using (var disk = (Qcow2Disk)DiskImage.Open(_files["v2.qcow2"], null, readOnly: true))
            Assert.Equal(2, disk.Header.Version);
        AssertReadsLikeQemu(_files["v2.qcow2"]);
    }

    [Fact]
    public void BackingChainOfDepthThreeWithRelativeNames()
    {
        string baseRaw = MakeRaw("base.raw", 4);
        QemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", _files["l1.qcow2"]);
        QemuIo(_files["l1.qcow2"], "qcow2", "write -P 0x11 64k 128k", "write -P 0x12 1000k 4k");
        QemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "l1.qcow2", "-F", "qcow2", _files["l2.qcow2"]);
        QemuIo(_files["l2.qcow2"], "qcow2", "write -P 0x21 100k 8k", "write -z 2M 64k");
        ImageCreate.Qcow2(_files["l3.qcow2"], 4 << 20, 65536, "l2.qcow2", null); // larger than its backing; format probed
        QemuIo(_files["l3.qcow2"], "qcow2", "write -P 0x31 3M 1k", "write -P 0x32 3400k 600k");
        string cwd = Environment.CurrentDirectory;
        AssertReadsLikeQemu(_files["l3.qcow2"]);
        Assert.Equal(cwd, Environment.CurrentDirectory);
        Assert.Equal(File.ReadAllBytes(baseRaw), File.ReadAllBytes(baseRaw)); // untouched
    }

    [Fact]
    public void ZeroClustersFromWriteZeroes()
    {
        string raw = MakeRaw("src.raw", 5);
        QemuImg("convert", "-O", "qcow2", raw, _files["z.qcow2"]);
        QemuIo(_files["z.qcow2"], "qcow2", "write -z 0 256k", "write -z -u 512k 128k", "write -z 70k 10k");
        AssertReadsLikeQemu(_files["z.qcow2"]);
    }

    [Fact]
    public void OddRefcountWidthsRead()
    {
        string raw = MakeRaw("src.raw", 6);
        foreach (int bits in new[] { 1, 2, 8, 32, 64 })
        {
            string image = _files[$"r{bits}.qcow2"];
            QemuImg("convert", "-O", "qcow2", "-o", $"refcount_bits={bits}", raw, image);
            AssertReadsLikeQemu(image);
            Assert.Equal(0, ImageCheck.Run(image, repairLeaks: false).ExitCode);
        }
    }

    [Fact]
    public void InfoAgreesWithQemuImg()
    {
        MakeRaw("base.raw", 7);
        QemuImg("create", "-f", "qcow2", "-o", "cluster_size=16384", "-b", "base.raw", "-F", "raw", _files["o.qcow2"], "8M");
        using var ours = System.Text.Json.JsonDocument.Parse(ImageInfo.ToJson([ImageInfo.Read(_files["o.qcow2"])], asArray: false));
        using var theirs = System.Text.Json.JsonDocument.Parse(QemuImg("info", "--output=json", _files["o.qcow2"]));
        foreach (var key in new[] { "virtual-size", "cluster-size", "format", "backing-filename", "backing-filename-format", "full-backing-filename" })
            Assert.Equal(theirs.RootElement.GetProperty(key).ToString(), ours.RootElement.GetProperty(key).ToString());
        Assert.Equal(theirs.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("refcount-bits").GetInt32(),
            ours.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("refcount-bits").GetInt32());
    }
}
