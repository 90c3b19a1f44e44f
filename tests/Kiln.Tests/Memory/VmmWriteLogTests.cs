using Kiln.Memory;
using Kiln.Tests.Virtio;

namespace Kiln.Tests.Memory;

/// <summary>The VMM's own write log (live migration): what it records, when, and that nothing is recorded while no
/// migration runs.</summary>
public sealed class VmmWriteLogTests
{
    private const ulong Page = 4096;

    /// <summary>Page numbers marked in region <paramref name="region"/> (taking them clears the log).</summary>
    private static List<ulong> Taken(VmmWriteLog log, GuestMemory memory, int region)
    {
        var bits = new ulong[(memory.Regions[region].Size / Page + 63) / 64];
        log.TakeInto(region, bits);
        var pages = new List<ulong>();
        for (int i = 0; i < bits.Length; i++)
            for (int b = 0; b < 64; b++)
                if ((bits[i] & (1UL << b)) != 0)
                    pages.Add((ulong)i * 64 + (ulong)b);
        return pages;
    }

    [Fact]
    public void WritesAndFillsAreLoggedOnlyWhileLogging()
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x100000)]);
        mem.Write(new GuestAddress(0x3000), 1UL);
        Assert.False(mem.IsLoggingWrites);
        var log = mem.StartWriteLog();
        Assert.True(mem.IsLoggingWrites);
        Assert.Empty(Taken(log, mem, 0)); // the write before logging started is not in it
        mem.Write(new GuestAddress(0x5FFC), 0x1122334455667788UL); // straddles pages 5 and 6
        mem.Fill(new GuestAddress(0x41000), 0x3000, 0xAB);           // pages 0x41..0x43
        mem.Write<byte>(new GuestAddress(0xFFFFF), 1);              // the last page
        Assert.Equal([5UL, 6, 0x41, 0x42, 0x43, 0xFF], Taken(log, mem, 0));
        Assert.Empty(Taken(log, mem, 0)); // taking clears
        mem.StopWriteLog();
        mem.Write(new GuestAddress(0x7000), 1UL);
        Assert.False(mem.IsLoggingWrites);
        Assert.Empty(Taken(log, mem, 0));
    }

    [Fact]
    public void RangesAcrossRegionsAndWholeWordsAreMarkedAndOutsideRamIsIgnored()
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x200000), (new GuestAddress(0x300000), 0x80000)]);
        var log = mem.StartWriteLog();
        mem.MarkWritten(new GuestAddress(0x1FF000), 0x102000); // last page of region 0, the hole, first page of region 1
        Assert.Equal([0x1FFUL], Taken(log, mem, 0));
        Assert.Equal([0UL], Taken(log, mem, 1));
        mem.MarkWritten(new GuestAddress(0x1000), 130 * Page); // pages 1..130: crosses two 64-page words whole
        Assert.Equal(Enumerable.Range(1, 130).Select(p => (ulong)p), Taken(log, mem, 0));
        mem.MarkWritten(new GuestAddress(ulong.MaxValue - 10), 100); // wraps around: nothing in RAM, no crash
        mem.MarkWritten(new GuestAddress(0x10), 0);
        Assert.Empty(Taken(log, mem, 0));
        Assert.Empty(Taken(log, mem, 1));
    }

    /// <summary>The test driver never writes the data buffer or the used ring, so their marks come from the device:
    /// the data through a span (reported when the chain is returned), the used element through GuestMemory.Write.</summary>
    [Fact]
    public void AZeroCopyBlockReadMarksItsBufferAndTheUsedRing()
    {
        const uint In = 0;
        using var rig = new BlockRig();
        var log = rig.Memory.StartWriteLog();
        Assert.Equal(0, rig.Submit(In, 2, 8192, dataWritable: true));
        var pages = Taken(log, rig.Memory, 0);
        Assert.Contains(BlockRig.Data / Page, pages);
        Assert.Contains(BlockRig.Data / Page + 1, pages);
        Assert.DoesNotContain(BlockRig.Data / Page + 2, pages);
        Assert.Contains(BlockRig.Status / Page, pages);
        Assert.Contains(rig.Queue.Used / Page, pages);
    }
}
