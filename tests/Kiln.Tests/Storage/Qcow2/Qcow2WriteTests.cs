using Kiln.Storage;
using Kiln.Storage.Qcow2;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>Images Kiln writes pass `qemu-img check` and hold what was written (`qemu-img compare`).</summary>
public sealed class Qcow2WriteTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>Random writes (partial clusters, across clusters, big runs) mirrored into <paramref name="expected"/>.</summary>
    private static void RandomWrites(IDiskBackend disk, byte[] expected, int seed, int count)
    {
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            int length = rng.Next(4) switch { 0 => rng.Next(1, 600), 1 => 4096, 2 => rng.Next(1, 200_000), _ => 65536 * 2 };
            int offset = rng.Next(0, expected.Length - length);
            if (rng.Next(3) != 0)
                offset &= ~511;
            var data = new byte[length];
            rng.NextBytes(data);
            disk.Write((ulong)offset, data);
            data.CopyTo(expected, offset);
        }
    }

    private void AssertImageHolds(string image, byte[] expected)
    {
        AssertQemuCheckClean(image);
        File.WriteAllBytes(_files["expected.raw"], expected);
        QemuImg("compare", "-f", "qcow2", "-F", "raw", image, _files["expected.raw"]);
        Assert.Equal(0, ImageCheck.Run(image, repairLeaks: false).ExitCode);
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 << 20)]
    public void CreateThenRandomWrites(int clusterSize)
    {
        string image = _files["w.qcow2"];
        ImageCreate.Qcow2(image, 6 << 20, clusterSize);
        AssertQemuCheckClean(image);
        var expected = new byte[6 << 20];
        using (var disk = DiskImage.Open(image, "qcow2", readOnly: false))
        {
            RandomWrites(disk, expected, clusterSize, 60);
            Assert.Equal(expected, ReadAll(disk));
        }
        AssertImageHolds(image, expected);
        using var again = DiskImage.Open(image, null, readOnly: true);
        Assert.Equal(expected, ReadAll(again));
    }

    [Fact]
    public void OverlayWritesCopyOnWriteAndLeaveTheBaseAlone()
    {
        var baseData = Random(5 << 20, 11);
        File.WriteAllBytes(_files["base.raw"], baseData);
        string baseHash = Hash(_files["base.raw"]);
        ImageCreate.Qcow2(_files["ov.qcow2"], 6 << 20, 65536, "base.raw", "raw"); // bigger than the base: zeros past it
        var expected = new byte[6 << 20];
        baseData.CopyTo(expected, 0);
        using (var disk = DiskImage.Open(_files["ov.qcow2"], null, readOnly: false))
        {
            Assert.Equal(expected, ReadAll(disk));
            RandomWrites(disk, expected, 12, 40);
            disk.Write(5 << 20, new byte[] { 1, 2, 3 }); // a cluster past the base's end
            new byte[] { 1, 2, 3 }.CopyTo(expected, 5 << 20);
        }
        AssertImageHolds(_files["ov.qcow2"], expected);
        Assert.Equal(baseHash, Hash(_files["base.raw"]));
        Assert.Equal(expected, _files.QemuRaw(_files["ov.qcow2"]));
    }

    [Fact]
    public void WritesOverCompressedAndZeroClustersOfAQemuImage()
    {
        var data = Random(4 << 20, 13);
        data.AsSpan(0, 1 << 20).Fill(7);
        File.WriteAllBytes(_files["src.raw"], data);
        QemuImg("convert", "-c", "-O", "qcow2", _files["src.raw"], _files["c.qcow2"]);
        QemuIo(_files["c.qcow2"], "qcow2", "write -z 2M 128k", "write -z -u 3M 64k");
        var expected = _files.QemuRaw(_files["c.qcow2"]);
        using (var disk = DiskImage.Open(_files["c.qcow2"], null, readOnly: false))
        {
            RandomWrites(disk, expected, 14, 30);
            disk.Write((2 << 20) + 100, new byte[] { 9 });
            expected[(2 << 20) + 100] = 9;
        }
        AssertImageHolds(_files["c.qcow2"], expected);
    }

    [Theory]
    [InlineData("compat=0.10")]
    [InlineData("cluster_size=512")]
    public void WritesIntoQemuImagesOfOtherShapes(string options)
    {
        string image = _files["o.qcow2"];
        QemuImg("create", "-f", "qcow2", "-o", options, image, "3M");
        var expected = new byte[3 << 20];
        using (var disk = DiskImage.Open(image, null, readOnly: false))
        {
            RandomWrites(disk, expected, 20, 40);
            disk.WriteZeroes(1 << 20, 1 << 20, mayUnmap: true);
            expected.AsSpan(1 << 20, 1 << 20).Clear();
        }
        AssertImageHolds(image, expected);
        ImageCreate.Qcow2(_files["small.qcow2"], 1 << 20, 512);
        AssertQemuCheckClean(_files["small.qcow2"]);
    }

    [Fact]
    public void WriteZeroesAndDiscard()
    {
        var baseData = Random(2 << 20, 15);
        File.WriteAllBytes(_files["base.raw"], baseData);
        ImageCreate.Qcow2(_files["z.qcow2"], 2 << 20, 65536, "base.raw", "raw");
        var expected = (byte[])baseData.Clone();
        using (var disk = DiskImage.Open(_files["z.qcow2"], null, readOnly: false))
        {
            RandomWrites(disk, expected, 16, 10);
            disk.WriteZeroes(65536, 3 * 65536, mayUnmap: true); // whole clusters: zero flag, over the backing too
            disk.WriteZeroes(700_000, 1000, mayUnmap: false);
            disk.Discard(1 << 20, 65536 * 2);
            expected.AsSpan(65536, 3 * 65536).Clear();
            expected.AsSpan(700_000, 1000).Clear();
            expected.AsSpan(1 << 20, 65536 * 2).Clear();
            Assert.Equal(expected, ReadAll(disk));
        }
        AssertImageHolds(_files["z.qcow2"], expected);
    }

    [Fact]
    public void RefcountTableGrowsWhenTheImageOutgrowsIt()
    {
        string image = _files["tiny.qcow2"];
        QemuImg("create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", image, "6M");
        var expected = new byte[6 << 20];
        using (var disk = DiskImage.Open(image, null, readOnly: false))
        {
            var data = Random(6 << 20, 17);
            disk.Write(0, data);
            data.CopyTo(expected, 0);
            RandomWrites(disk, expected, 18, 10);
        }
        AssertImageHolds(image, expected);
    }

    [Fact]
    public void ConvertBothWaysKeepsHolesSparse()
    {
        var data = new byte[16 << 20];
        Random(1 << 20, 19).CopyTo(data, 3 << 20);
        data[15 << 20] = 1;
        File.WriteAllBytes(_files["in.raw"], data);
        ImageConvert.Run(_files["in.raw"], null, _files["out.qcow2"], "qcow2");
        AssertQemuCheckClean(_files["out.qcow2"]);
        QemuImg("compare", _files["in.raw"], _files["out.qcow2"]);
        Assert.True(new FileInfo(_files["out.qcow2"]).Length < 2 << 20, "qcow2 output is not sparse");
        ImageConvert.Run(_files["out.qcow2"], "qcow2", _files["back.raw"], "raw");
        Assert.Equal(data, File.ReadAllBytes(_files["back.raw"]));
        var (code, du, _) = Run("du", "-k", _files["back.raw"]);
        Assert.Equal(0, code);
        Assert.True(int.Parse(du.Split('\t')[0]) < 4096, $"raw output is not sparse: {du}");
    }

    [Fact]
    public void ResizeGrowsTheL1Table()
    {
        string image = _files["r.qcow2"];
        ImageCreate.Qcow2(image, 1UL << 30, 4096); // one L1 cluster: 512 entries x 2 MiB
        using (var disk = DiskImage.Open(image, null, readOnly: false))
            disk.Write((1UL << 30) - 3, new byte[] { 1, 2, 3 });
        Assert.Equal(3UL << 30, ImageResize.Run(image, null, null, 2UL << 30));
        AssertQemuCheckClean(image);
        Assert.Contains("\"virtual-size\": 3221225472", QemuImg("info", "--output=json", image));
        using (var disk = DiskImage.Open(image, null, readOnly: false))
        {
            var b = new byte[3];
            disk.Read((1UL << 30) - 3, b);
            Assert.Equal(new byte[] { 1, 2, 3 }, b);
            disk.Write((3UL << 30) - 1, new byte[] { 4 });
        }
        AssertQemuCheckClean(image);
        QemuIo(image, "qcow2", "read -P 4 3221225471 1", "read -P 0 3145727k 1023");
    }

    [Fact]
    public void CheckFindsAndRepairsLeaks()
    {
        string image = _files["leak.qcow2"];
        ImageCreate.Qcow2(image, 4 << 20, 65536);
        using (var disk = (Qcow2Disk)DiskImage.Open(image, null, readOnly: false))
        {
            disk.Write(0, new byte[100]);
            ulong leaked = disk.Refcounts.Allocate(3); // clusters with refcount 1 that nothing references
            disk.File.Write(leaked + 3 * 65536 - 1, new byte[1]); // inside the file: qemu-img ignores refcounts past EOF
        }
        var result = ImageCheck.Run(image, repairLeaks: false);
        Assert.Equal(3, result.Leaks);
        Assert.Equal(3, result.ExitCode);
        Assert.Equal(3, Run("qemu-img", "check", image).Code);
        var repaired = ImageCheck.Run(image, repairLeaks: true);
        Assert.Equal(3, repaired.LeaksFixed);
        AssertQemuCheckClean(image);
        Assert.Equal(0, ImageCheck.Run(image, false).ExitCode);
    }
}
