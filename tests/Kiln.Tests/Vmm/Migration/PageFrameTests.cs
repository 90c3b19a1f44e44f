using System.Buffers.Binary;
using Kiln.Memory;
using Kiln.Vmm.Migration;

namespace Kiln.Tests.Vmm.Migration;

/// <summary>The destination's page decoder gets bytes from the network: every hostile frame is refused with a
/// MigrationException before anything outside guest RAM is touched.</summary>
public sealed class PageFrameTests : IDisposable
{
    private readonly GuestMemory _memory = GuestMemory.Create([(new GuestAddress(0), 1 << 20), (new GuestAddress(0x200000), 1 << 20)]);

    public void Dispose() => _memory.Dispose();

    /// <summary>A Pages payload as the sender builds it: the table, then the data of the non-zero entries.</summary>
    private static byte[] Frame(params (ulong Entry, byte Fill)[] pages)
    {
        var bytes = new List<byte>();
        var word = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)pages.Length);
        bytes.AddRange(word.AsSpan(0, 4).ToArray());
        foreach (var (entry, _) in pages)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, entry);
            bytes.AddRange(word);
        }
        foreach (var (entry, fill) in pages)
            if ((entry & PageFrame.ZeroPage) == 0)
                bytes.AddRange(Enumerable.Repeat(fill, 4096));
        return [.. bytes];
    }

    /// <summary>Receives <paramref name="payload"/> as a frame whose header claimed <paramref name="length"/> bytes.</summary>
    private void Receive(byte[] payload, int? length = null)
    {
        using var stream = new MigrationStream(new MemoryStream(payload));
        PageFrame.Receive(stream, length ?? payload.Length, _memory, new PageFrame.Scratch());
    }

    [Fact]
    public void WritesDataPagesAndClearsZeroPages()
    {
        _memory.Fill(new GuestAddress(0x1000), 4096, 0x55);
        Receive(Frame((0x200000, 0xAB), (0x1000 | PageFrame.ZeroPage, 0), (0x3000, 0xCD)));
        Assert.Equal(0xAB, _memory.Read<byte>(new GuestAddress(0x200FFF)));
        Assert.Equal(0, _memory.Read<byte>(new GuestAddress(0x1800)));
        Assert.Equal(0xCD, _memory.Read<byte>(new GuestAddress(0x3000)));
    }

    [Theory]
    [InlineData(0x100000UL)]          // the hole between the regions
    [InlineData(0x300000UL)]          // past the end of RAM
    [InlineData(0x1002UL)]            // unknown flag bits
    [InlineData(0xFFFF_FFFF_FFFF_F000UL)] // would overflow address + length
    public void RefusesPagesOutsideRam(ulong entry)
    {
        var e = Assert.Throws<MigrationException>(() => Receive(Frame((entry, 1))));
        Assert.Contains("not a page of guest RAM", e.Message);
    }

    [Fact]
    public void RefusesMalformedFrames()
    {
        byte[] good = Frame((0x2000, 7));
        Assert.Throws<MigrationException>(() => Receive(good.AsSpan(0, 3).ToArray()));            // no count
        Assert.Throws<MigrationException>(() => Receive(good, good.Length - 1));                 // length short of the data
        Assert.Throws<MigrationException>(() => Receive(good.AsSpan(0, 10).ToArray(), good.Length)); // stream ends early
        Assert.Throws<MigrationException>(() => Receive([.. good, 0]));                          // trailing bytes
        Assert.Throws<MigrationException>(() => Receive(Frame()));                               // no pages
        // A count far larger than the payload, and one over the per-frame bound.
        byte[] lying = [.. good];
        BinaryPrimitives.WriteUInt32LittleEndian(lying, uint.MaxValue);
        Assert.Throws<MigrationException>(() => Receive(lying));
        BinaryPrimitives.WriteUInt32LittleEndian(lying, PageFrame.MaxPages + 1);
        Assert.Throws<MigrationException>(() => Receive(lying, PageFrame.TableLength(PageFrame.MaxPages + 1)));
    }
}
