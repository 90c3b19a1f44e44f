using Kiln.Storage;
using Kiln.Storage.Qcow2;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>L2 entries of allocating writes are committed in batches: the disk reads its own writes at once, the file
/// gets them at a flush, and a replaced-before-commit entry frees exactly what it must.</summary>
public sealed class Qcow2DeferredCommitTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void AllocatingWritesReadBackAtOnceAndReachTheFileAtAFlush()
    {
        string image = _files["d.qcow2"];
        ImageCreate.Qcow2(image, 4 << 20, 65536);
        var data = Random(3 * 65536 + 100, 1);
        using var disk = (Qcow2Disk)DiskImage.Open(image, "qcow2", readOnly: false);
        disk.Write(70000, data);
        var back = new byte[data.Length];
        disk.Read(70000, back);
        Assert.Equal(data, back);
        using (var before = DiskImage.Open(image, "qcow2", readOnly: true))
        {
            var seen = new byte[data.Length];
            before.Read(70000, seen);
            Assert.False(seen.AsSpan().ContainsAnyExcept((byte)0), "the L2 entries reached the file before a flush");
        }
        disk.Flush();
        AssertQemuCheckClean(image);
        using var after = DiskImage.Open(image, "qcow2", readOnly: true);
        var committed = new byte[data.Length];
        after.Read(70000, committed);
        Assert.Equal(data, committed);
    }

    [Fact]
    public void EntriesReplacedBeforeTheCommitLeaveNoLeakAndTheRightData()
    {
        string image = _files["r.qcow2"];
        ImageCreate.Qcow2(image, 4 << 20, 65536);
        var expected = new byte[4 << 20];
        using (var disk = DiskImage.Open(image, "qcow2", readOnly: false))
        {
            var a = Random(65536, 2);
            disk.Write(0, a);                               // allocates cluster 0 (deferred)
            disk.WriteZeroes(0, 65536, mayUnmap: true);     // replaced by a zero entry before the commit
            var b = Random(512, 3);
            disk.Write(1024, b);                            // allocates again (the first cluster is orphaned)
            b.CopyTo(expected, 1024);
            disk.Write(65536, a);
            disk.Flush();
            disk.WriteZeroes(65536, 65536, mayUnmap: true); // after a commit: the file's cluster is released
            disk.Flush();
            Assert.Equal(expected, ReadAll(disk));
        }
        AssertQemuCheckClean(image); // no leaks: every orphaned or replaced cluster was freed
        File.WriteAllBytes(_files["expected.raw"], expected);
        QemuImg("compare", "-f", "qcow2", "-F", "raw", image, _files["expected.raw"]);
    }

    [Fact]
    public void DisposeCommitsWhatIsWaiting()
    {
        string image = _files["c.qcow2"];
        ImageCreate.Qcow2(image, 1 << 20, 4096);
        var data = Random(20000, 4);
        using (var disk = DiskImage.Open(image, "qcow2", readOnly: false))
            disk.Write(4096, data);
        AssertQemuCheckClean(image);
        using var again = DiskImage.Open(image, "qcow2", readOnly: true);
        var back = new byte[data.Length];
        again.Read(4096, back);
        Assert.Equal(data, back);
    }
}
