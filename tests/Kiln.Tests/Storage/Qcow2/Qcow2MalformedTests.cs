using System.Buffers.Binary;
using Kiln.Storage;
using Kiln.Storage.Qcow2;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>Hostile images: one clear DiskException/ImageFormatException, never a crash, never a write outside the
/// image (the file is unchanged when the open or the access is refused).</summary>
public sealed class Qcow2MalformedTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>A 64 KiB-cluster image with data in clusters 0..3 and a compressed cluster.</summary>
    private string MakeImage(string name = "m.qcow2", string options = "cluster_size=65536")
    {
        var data = Random(1 << 20, 5);
        data.AsSpan(512 << 10, 256 << 10).Fill(3);
        File.WriteAllBytes(_files["src.raw"], data);
        QemuImg("convert", "-O", "qcow2", "-o", options, _files["src.raw"], _files[name]);
        return _files[name];
    }

    private static void Patch(string path, long offset, ulong value, int size)
    {
        var bytes = new byte[size];
        if (size == 8)
            BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        else
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)value);
        using var f = new FileStream(path, FileMode.Open);
        f.Position = offset;
        f.Write(bytes);
    }

    private static ulong ReadU64(string path, long offset)
    {
        var b = new byte[8];
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read);
        f.Position = offset;
        f.ReadExactly(b);
        return BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    /// <summary>Opens (read-write if it can, else read-only), reads and writes a bit; only our two exception types may
    /// come out. Returns the message of the first refusal, if any.</summary>
    private static string? Exercise(string path)
    {
        try
        {
            IDiskBackend disk;
            try
            {
                disk = DiskImage.Open(path, null, readOnly: false);
            }
            catch (ImageFormatException)
            {
                disk = DiskImage.Open(path, null, readOnly: true);
            }
            using (disk)
            {
                var buffer = new byte[Math.Min(disk.Capacity, 2UL << 20)];
                disk.Read(0, buffer);
                if (disk.Capacity > 1 << 20)
                    disk.Read(disk.Capacity - 4096, new byte[4096]);
                if (!disk.IsReadOnly)
                {
                    disk.Write(4096, new byte[8192]);
                    disk.Write(disk.Capacity / 2 & ~511UL, new byte[512]);
                    disk.WriteZeroes(0, Math.Min(disk.Capacity, 1 << 20), true);
                    disk.Flush(); // L2 entries are committed in batches: a guest's flush is where their errors surface
                }
            }
            return null;
        }
        catch (Exception e) when (e is DiskException or ImageFormatException)
        {
            Assert.DoesNotContain('\n', e.Message);
            return e.Message;
        }
    }

    private static void AssertRefused(string path, string expected, bool allocatedWritesAllowed = false)
    {
        string before = Hash(path);
        long length = new FileInfo(path).Length;
        string? message = Exercise(path);
        Assert.NotNull(message);
        Assert.Contains(expected, message);
        Assert.Equal(length, new FileInfo(path).Length);
        if (!allocatedWritesAllowed)
            Assert.Equal(before, Hash(path));
    }

    [Fact]
    public void FuzzedHeadersFailCleanly()
    {
        string good = MakeImage();
        var original = File.ReadAllBytes(good);
        var rng = new Random(1234);
        string path = _files["fuzz.qcow2"];
        for (int round = 0; round < 300; round++)
        {
            var image = (byte[])original.Clone();
            int flips = rng.Next(1, 6);
            for (int i = 0; i < flips; i++)
                image[rng.Next(round % 2 == 0 ? 112 : 1024)] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(path, image);
            Exercise(path);
            // Reading through `check` and `info` must be equally robust.
            try
            {
                ImageCheck.Run(path, repairLeaks: false);
                ImageInfo.ReadChain(path);
            }
            catch (Exception e) when (e is DiskException or ImageFormatException)
            {
            }
        }
    }

    [Fact]
    public void FuzzedMetadataTablesFailCleanly()
    {
        string good = MakeImage("t.qcow2", "cluster_size=4096");
        var original = File.ReadAllBytes(good);
        var rng = new Random(99);
        string path = _files["fuzz.qcow2"];
        for (int round = 0; round < 200; round++)
        {
            var image = (byte[])original.Clone();
            for (int i = 0; i < 8; i++) // L1 (cluster 3 onwards), refcount table and the first L2 tables
                image[rng.Next(4096, Math.Min(image.Length, 8 * 4096))] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(path, image);
            Exercise(path);
            try
            {
                ImageCheck.Run(path, repairLeaks: false);
            }
            catch (Exception e) when (e is DiskException or ImageFormatException)
            {
            }
        }
    }

    [Fact]
    public void L1EntryPastTheEndOfTheFile()
    {
        string path = MakeImage();
        ulong l1 = ReadU64(path, 40);
        Patch(path, (long)l1, (1UL << 63) | (ulong)(new FileInfo(path).Length + (1 << 20)) & ~0xFFFFUL, 8);
        AssertRefused(path, "past the end of the file");
        Assert.Equal(2, ImageCheck.Run(path, false).ExitCode);
    }

    [Fact]
    public void L2EntriesPointingIntoTheHeaderL1OrRefcountTable()
    {
        foreach (var (target, expected) in new[] { ("l1", "L1 table"), ("reftable", "refcount table") })
        {
            string path = MakeImage($"{target}.qcow2");
            ulong l1Table = ReadU64(path, 40);
            ulong l2 = ReadU64(path, (long)l1Table) & L2Entry.OffsetMask;
            ulong pointTo = target == "l1" ? l1Table : ReadU64(path, 48);
            Patch(path, (long)l2, (1UL << 63) | pointTo, 8);
            AssertRefused(path, expected);
            Assert.Equal(2, ImageCheck.Run(path, false).ExitCode);
        }
        string header = MakeImage("hdr.qcow2");
        Patch(header, (long)ReadU64(header, 40), 1UL << 63 | 0, 8); // L1 -> cluster 0? offset 0 = unallocated: fine
        Patch(header, (long)ReadU64(header, 40), 1UL << 63 | 512, 8); // misaligned into the header cluster
        AssertRefused(header, "not cluster-aligned");
    }

    [Fact]
    public void RefcountBlockPastTheEnd()
    {
        string path = MakeImage();
        ulong table = ReadU64(path, 48);
        Patch(path, (long)table, (ulong)new FileInfo(path).Length + (4 << 20), 8);
        AssertRefused(path, "refcount block", allocatedWritesAllowed: true); // in-place writes need no refcount
        Assert.Equal(2, ImageCheck.Run(path, false).ExitCode);
    }

    [Fact]
    public void RefcountOverflowIsReported()
    {
        string path = MakeImage("one.qcow2", "cluster_size=65536,refcount_bits=1");
        ulong l1 = ReadU64(path, 40);
        ulong l2 = ReadU64(path, (long)l1) & L2Entry.OffsetMask;
        ulong first = ReadU64(path, (long)l2);
        Patch(path, (long)l2 + 8, first, 8); // two guest clusters share one host cluster: needs refcount 2 > 1-bit max
        var result = ImageCheck.Run(path, false);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(result.Findings, f => f.Contains("more than 1-bit refcounts hold"));
    }

    [Fact]
    public void HugeVirtualSize()
    {
        string path = MakeImage();
        Patch(path, 24, 1UL << 60, 8);
        AssertRefused(path, "L1 entries");
        Assert.Throws<DiskException>(() => ImageCreate.Qcow2(_files["huge.qcow2"], 1UL << 60));
        Assert.False(File.Exists(_files["huge.qcow2"]));
    }

    [Fact]
    public void BackingLoopIsDetected()
    {
        ImageCreate.Qcow2(_files["b.qcow2"], 1 << 20);
        ImageCreate.Qcow2(_files["a.qcow2"], 1 << 20, 65536, "b.qcow2", "qcow2");
        QemuImg("rebase", "-u", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", _files["b.qcow2"]);
        var e = Assert.Throws<ImageFormatException>(() => DiskImage.Open(_files["a.qcow2"], null, false));
        Assert.Contains("loop", e.Message);
        Assert.Throws<ImageFormatException>(() => ImageInfo.ReadChain(_files["a.qcow2"]));
        Assert.Throws<DiskException>(() => ImageCreate.Qcow2(_files["b.qcow2"], 1 << 20, 65536, "b.qcow2", "qcow2"));
        QemuImg("rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", _files["b.qcow2"]); // b -> b
        Assert.Contains("loop", Assert.Throws<ImageFormatException>(() => DiskImage.Open(_files["b.qcow2"], null, true)).Message);
    }

    [Fact]
    public void UnknownIncompatibleFeatureIsNamed()
    {
        string path = MakeImage();
        Patch(path, 72, 1UL << 20 | 1UL << 33, 8);
        AssertRefused(path, "bit 20, bit 33");
    }

    [Fact]
    public void UnknownIncompatibleFeatureUsesTheFeatureNameTable()
    {
        string path = _files["named.qcow2"];
        ImageCreate.Qcow2(path, 1 << 20);
        var bytes = File.ReadAllBytes(path);
        int name = bytes.AsSpan(0, 65536).IndexOf("extended L2 entries"u8);
        Assert.True(name > 0);
        bytes[name - 1] = 20; // the table entry now names bit 20
        File.WriteAllBytes(path, bytes);
        Patch(path, 72, 1UL << 20, 8);
        AssertRefused(path, "'extended L2 entries' (bit 20)");
    }

    [Fact]
    public void CorruptBitRefusesWritesButAllowsReads()
    {
        string path = MakeImage();
        Patch(path, 72, Qcow2Features.Corrupt, 8);
        string before = Hash(path);
        Assert.Contains("corrupt", Assert.Throws<ImageFormatException>(() => DiskImage.Open(path, null, false)).Message);
        using (var ro = DiskImage.Open(path, null, true))
            ro.Read(0, new byte[4096]);
        Assert.Equal(before, Hash(path));
    }

    [Fact]
    public void TruncatedImage()
    {
        string path = MakeImage();
        using (var f = new FileStream(path, FileMode.Open))
            f.SetLength(100);
        AssertRefused(path, "too short");
        using (var f = new FileStream(path, FileMode.Open))
            f.SetLength(3 * 65536 + 100); // header and tables present, L2 and data gone
        Assert.NotNull(Exercise(path));
    }

    [Fact]
    public void RawIsNeverProbedWhenTheUserSaysRaw()
    {
        string path = MakeImage();
        using var disk = DiskImage.Open(path, "raw", readOnly: true);
        Assert.IsType<RawDiskBackend>(disk);
        Assert.Equal((ulong)new FileInfo(path).Length, disk.Capacity);
    }
}
