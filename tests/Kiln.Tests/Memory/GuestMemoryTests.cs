using Kiln.Memory;

namespace Kiln.Tests.Memory;

public sealed class GuestMemoryTests
{
    [Fact]
    public void SmallRamIsOneRegionFromZero()
    {
        var layout = X86MemoryLayout.RamRegions(512UL << 20);
        Assert.Equal([(new GuestAddress(0), 512UL << 20)], layout);
    }

    [Fact]
    public void LargeRamContinuesAboveFourGiB()
    {
        var layout = X86MemoryLayout.RamRegions(6UL << 30);
        Assert.Equal(2, layout.Count);
        Assert.Equal((new GuestAddress(0), 3UL << 30), layout[0]);
        Assert.Equal((new GuestAddress(4UL << 30), 3UL << 30), layout[1]);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(4095UL)]
    [InlineData((1UL << 20) + 1)]
    public void ImpossibleSizesAreRefused(ulong size) =>
        Assert.Throws<GuestMemoryException>(() => X86MemoryLayout.RamRegions(size));

    [Fact]
    public void ReadsAndWritesRoundTripAndCrossAdjacentRegions()
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x2000), (new GuestAddress(0x2000), 0x1000)]);
        mem.Write(new GuestAddress(0x1FFC), 0x1122334455667788UL);
        Assert.Equal(0x1122334455667788UL, mem.Read<ulong>(new GuestAddress(0x1FFC)));
        Assert.Equal(0x55667788u, mem.Read<uint>(new GuestAddress(0x1FFC)));
        Assert.True(mem.IsValid(new GuestAddress(0x1000), 0x2000));
        Assert.False(mem.TryGetSpan(new GuestAddress(0x1FFC), 8, out _)); // spans two regions: no single span
    }

    [Theory]
    [InlineData(0x3000UL, 1UL)]                   // just past the end
    [InlineData(0x2FFFUL, 2UL)]                   // straddles the end
    [InlineData(0xFFFF_FFFF_FFFF_FFF0UL, 0x20UL)] // address + length overflows 64 bits
    [InlineData(0x0UL, 0xFFFF_FFFF_FFFF_FFFFUL)]  // absurd length
    public void AccessesOutsideRamAreRefusedWithoutOverflow(ulong address, ulong length)
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x3000)]);
        Assert.False(mem.IsValid(new GuestAddress(address), length));
        if (length <= int.MaxValue)
        {
            Assert.False(mem.TryGetSpan(new GuestAddress(address), (int)length, out _));
            Assert.Throws<GuestMemoryException>(() => mem.Read(new GuestAddress(address), new byte[length]));
            Assert.Throws<GuestMemoryException>(() => mem.Write(new GuestAddress(address), new byte[length]));
        }
    }

    [Fact]
    public void ARingIndexIsWrittenWholeSoAConcurrentReaderNeverSeesAHalfWrittenValue()
    {
        // A driver polls the used index while the device advances it. A byte-wise store of the 2 bytes (what a span
        // copy did: first byte, then both) briefly shows 0x12FF -> 0x1200 -> 0x1300, a step back of 255 that a driver
        // takes for 65281 new entries. The writer here flips between the two sides of such a crossing, so any other
        // value the reader sees was half written, however the threads are scheduled.
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x1000)]);
        var index = new GuestAddress(0x802);
        mem.Write(index, (ushort)0x00FF);
        Assert.True(mem.TryGetSpan(index, 2, out var span));
        unsafe
        {
            fixed (byte* p = span)
            {
                nint at = (nint)p;
                bool done = false;
                long torn = 0;
                var reader = new Thread(() =>
                {
                    while (!Volatile.Read(ref done))
                    {
                        ushort now = Volatile.Read(ref *(ushort*)at);
                        if (now is not (0x00FF or 0x0100))
                            torn++;
                    }
                });
                reader.Start();
                for (int i = 0; i < 1 << 24; i++)
                {
                    mem.Write(index, (ushort)0x0100);
                    mem.Write(index, (ushort)0x00FF);
                }
                Volatile.Write(ref done, true);
                reader.Join();
                Assert.Equal(0, torn);
            }
        }
    }

    [Fact]
    public void HoleBetweenRegionsIsNotRam()
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x1000), (new GuestAddress(0x3000), 0x1000)]);
        Assert.False(mem.IsValid(new GuestAddress(0x800), 0x1000));
        Assert.Throws<GuestMemoryException>(() => mem.Read<uint>(new GuestAddress(0x1FFE)));
        Assert.Throws<GuestMemoryException>(() => mem.Fill(new GuestAddress(0xFF0), 0x20, 0));
    }

    [Fact]
    public void OverlappingRegionsAreRefused() =>
        Assert.Throws<GuestMemoryException>(() =>
            GuestMemory.Create([(new GuestAddress(0), 0x2000), (new GuestAddress(0x1000), 0x1000)]));

    [Fact]
    public void NegativeLengthIsRefused()
    {
        using var mem = GuestMemory.Create([(new GuestAddress(0), 0x1000)]);
        Assert.False(mem.TryGetSpan(new GuestAddress(0), -1, out _));
    }
}
