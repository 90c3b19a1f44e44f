using Kiln.Storage;

namespace Kiln.Tests.Storage;

public sealed class RawDiskBackendTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"kiln-raw-{Guid.NewGuid():N}.img");

    public RawDiskBackendTests() => File.WriteAllBytes(_path, Enumerable.Range(0, 8192).Select(i => (byte)i).ToArray());

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void CapacityReadWriteFlush()
    {
        using var disk = RawDiskBackend.Open(_path, readOnly: false);
        Assert.Equal(8192UL, disk.Capacity);
        Assert.False(disk.IsReadOnly);
        var buffer = new byte[4];
        disk.Read(256, buffer);
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, buffer);
        disk.Write(8188, new byte[] { 9, 9, 9, 9 });
        disk.Flush();
        disk.WriteZeroes(0, 512, mayUnmap: false);
        disk.Discard(512, 512);
        var file = File.ReadAllBytes(_path);
        Assert.Equal(9, file[8191]);
        Assert.All(file.AsSpan(0, 1024).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(8192, file.Length);
    }

    [Fact]
    public void OutOfRangeAndReadOnlyAreRefused()
    {
        using (var disk = RawDiskBackend.Open(_path, readOnly: false))
        {
            Assert.Throws<DiskException>(() => disk.Read(8190, new byte[4]));
            Assert.Throws<DiskException>(() => disk.Write(ulong.MaxValue, new byte[1]));
            Assert.Throws<DiskException>(() => disk.WriteZeroes(4096, ulong.MaxValue, false));
        }
        using var ro = RawDiskBackend.Open(_path, readOnly: true);
        Assert.True(ro.IsReadOnly);
        Assert.Throws<DiskException>(() => ro.Write(0, new byte[1]));
        Assert.Throws<DiskException>(() => ro.Discard(0, 512));
        ro.Flush();
    }

    [Fact]
    public void MissingOrEmptyFilesAreClearErrors()
    {
        Assert.Throws<DiskException>(() => RawDiskBackend.Open(_path + ".missing", false));
        File.WriteAllBytes(_path, []);
        Assert.Throws<DiskException>(() => RawDiskBackend.Open(_path, false));
    }
}
