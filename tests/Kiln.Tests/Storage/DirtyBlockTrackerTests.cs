using Kiln.Storage;
using Kiln.Storage.Qcow2;

namespace Kiln.Tests.Storage;

public sealed class DirtyBlockTrackerTests : IDisposable
{
    private const int Block = DirtyBlockTracker.BlockSize;
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-dirty-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private DirtyBlockTracker Raw(ulong size)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.raw");
        ImageCreate.Raw(path, size);
        return new DirtyBlockTracker(RawDiskBackend.Open(path, readOnly: false));
    }

    private static List<long> Blocks(long[] bitmap)
    {
        var blocks = new List<long>();
        for (int w = 0; w < bitmap.Length; w++)
            for (int b = 0; b < 64; b++)
                if ((bitmap[w] & (1L << b)) != 0)
                    blocks.Add(w * 64L + b);
        return blocks;
    }

    [Fact]
    public void OffItRemembersNothingAndPassesEverythingThrough()
    {
        using var disk = Raw(4 * (ulong)Block);
        Assert.False(disk.IsTracking);
        disk.Write(100, [1, 2, 3]);
        disk.WriteZeroes(0, 10, mayUnmap: false);
        Assert.Equal(0, disk.DirtyCount);
        Assert.Empty(disk.TakeDirty());
        var back = new byte[3];
        disk.Read(100, back);
        Assert.Equal(new byte[] { 1, 2, 3 }, back);
        Assert.Equal(4L, disk.BlockCount);
    }

    [Fact]
    public void WritesDiscardsAndZeroesMarkEveryBlockTheyTouch()
    {
        using var disk = Raw(200 * (ulong)Block + 512); // a short last block
        Assert.Equal(201L, disk.BlockCount);
        disk.StartTracking();
        disk.Write(0, new byte[512]);                               // block 0
        disk.Write((ulong)Block - 1, new byte[2]);                  // blocks 0 and 1
        disk.Discard(10 * (ulong)Block, 3 * (ulong)Block);          // 10, 11, 12
        disk.WriteZeroes(63 * (ulong)Block + 5, (ulong)Block, true); // 63, 64 (across a bitmap word)
        disk.Write(200 * (ulong)Block, new byte[512]);              // the short last block
        Assert.Equal(8, disk.DirtyCount);
        Assert.Equal(new long[] { 0, 1, 10, 11, 12, 63, 64, 200 }, Blocks(disk.TakeDirty()));
        Assert.Equal(0, disk.DirtyCount);
        Assert.Empty(Blocks(disk.TakeDirty()));
        disk.Write(5 * (ulong)Block, new byte[1]);
        Assert.Equal(new long[] { 5 }, Blocks(disk.TakeDirty()));
    }

    [Fact]
    public void StartingTwiceIsRefusedAndStoppingForgets()
    {
        using var disk = Raw(4 * (ulong)Block);
        disk.StartTracking();
        Assert.Throws<InvalidOperationException>(disk.StartTracking);
        disk.Write(0, new byte[1]);
        disk.StopTracking();
        Assert.Empty(disk.TakeDirty());
        disk.StartTracking(); // a later migration starts from a clean set
        Assert.Equal(0, disk.DirtyCount);
    }

    [Fact]
    public void AFailedWriteMarksNothing()
    {
        using var disk = Raw(4 * (ulong)Block);
        disk.StartTracking();
        Assert.Throws<DiskException>(() => disk.Write(4 * (ulong)Block - 1, new byte[2]));
        Assert.Equal(0, disk.DirtyCount);
    }

    /// <summary>A writer and a taker at once: every block written ends up in some take or in the rest.</summary>
    [Fact]
    public async Task NoChangeIsLostToAConcurrentTake()
    {
        using var disk = Raw(1024 * (ulong)Block);
        disk.StartTracking();
        var written = new HashSet<long>();
        var taken = new HashSet<long>();
        using var stop = new CancellationTokenSource();
        var taker = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                taken.UnionWith(Blocks(disk.TakeDirty()));
        });
        var random = new Random(5);
        for (int i = 0; i < 20_000; i++)
        {
            long block = random.Next(1024);
            disk.Write((ulong)block * Block + (ulong)random.Next(Block - 8), new byte[8]);
            written.Add(block);
        }
        stop.Cancel();
        await taker;
        taken.UnionWith(Blocks(disk.TakeDirty()));
        Assert.Equal(written.Order(), taken.Order());
    }

    [Fact]
    public void Qcow2AllocationMapKnowsHolesZeroClustersAndBackingFiles()
    {
        string basePath = Path.Combine(_dir, "base.qcow2"), top = Path.Combine(_dir, "top.qcow2");
        ImageCreate.Qcow2(basePath, 16 * (ulong)Block);
        using (var b = (Qcow2Disk)DiskImage.Open(basePath, "qcow2", readOnly: false))
            b.Write(3 * (ulong)Block, [7]);
        ImageCreate.Qcow2(top, 16 * (ulong)Block, backingFile: basePath, backingFormat: "qcow2");
        using var disk = new DirtyBlockTracker(DiskImage.Open(top, null, readOnly: false));
        Assert.True(disk.IsKnownZero(0, 3 * (ulong)Block));
        Assert.False(disk.IsKnownZero(3 * (ulong)Block, 1));            // data in the backing file
        Assert.False(disk.IsKnownZero(2 * (ulong)Block, 2 * (ulong)Block));
        disk.Write(5 * (ulong)Block, [1]);
        Assert.False(disk.IsKnownZero(5 * (ulong)Block, (ulong)Block));
        disk.WriteZeroes(5 * (ulong)Block, (ulong)Block, mayUnmap: true); // a zero cluster now
        Assert.True(disk.IsKnownZero(4 * (ulong)Block, 12 * (ulong)Block));
        Assert.Throws<DiskException>(() => disk.IsKnownZero(16 * (ulong)Block, 1));

    }

    [Fact]
    public void RawAllocationMapIsTheFilesHoles()
    {
        string raw = Path.Combine(_dir, "x.raw");
        ImageCreate.Raw(raw, 64 * (ulong)Block);
        using var disk = new DirtyBlockTracker(RawDiskBackend.Open(raw, readOnly: false));
        Assert.True(disk.IsKnownZero(0, 64 * (ulong)Block));
        disk.Write(10 * (ulong)Block + 5, [1]);
        Assert.False(disk.IsKnownZero(10 * (ulong)Block, (ulong)Block));
        Assert.False(disk.IsKnownZero(0, 11 * (ulong)Block));
        Assert.True(disk.IsKnownZero(0, 8 * (ulong)Block)); // file systems track holes at least per 4 KiB block
        Assert.True(disk.IsKnownZero(16 * (ulong)Block, 48 * (ulong)Block));
        Assert.Throws<DiskException>(() => disk.IsKnownZero(64 * (ulong)Block, 1));
    }
}
