using Kiln.Boot;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

/// <summary>The GDT and identity page tables every Linux entry gets, and the descriptor decoder the VMM uses.</summary>
public sealed class LongModeEnvironmentTests
{
    [Fact]
    public void GdtHoldsTheBootProtocolSelectorsAndMatchesTheEntry()
    {
        using var memory = Create(512 * MiB);
        var entry = KernelLoader.Load(memory, new BootRequest(RealKernel.Path, null, "", 1));

        Assert.Equal(0x500UL, entry.GdtBase.Value);
        Assert.Equal(0UL, memory.U64(0x500));
        Assert.Equal(0UL, memory.U64(0x508));
        Assert.Equal((ushort)0x10, entry.CodeSelector);
        Assert.Equal((ushort)0x18, entry.DataSelector);
        Assert.Equal((ushort)0x20, entry.TssSelector);
        Assert.Equal(0x00AF9B000000FFFFUL, entry.CodeDescriptor);
        Assert.Equal(0x00CF93000000FFFFUL, entry.DataDescriptor);
        Assert.Equal(entry.CodeDescriptor, memory.U64(0x500 + 0x10));
        Assert.Equal(entry.DataDescriptor, memory.U64(0x500 + 0x18));
        Assert.Equal(entry.TssDescriptor, memory.U64(0x500 + 0x20));
        Assert.Equal(0UL, memory.U64(0x500 + 0x28)); // upper half of the 16-byte long-mode TSS descriptor
        Assert.Equal(0x2F, entry.GdtLimit);
    }

    [Fact]
    public void PageTablesIdentityMapTheFirst4GiBWith2MiBPages()
    {
        using var memory = Create(512 * MiB);
        var entry = KernelLoader.Load(memory, new BootRequest(RealKernel.Path, null, "", 1));

        Assert.Equal(0x9000UL, entry.Cr3);
        Assert.Equal(0xA003UL, memory.U64(0x9000));
        Assert.Equal(0UL, memory.U64(0x9008));
        for (ulong i = 0; i < 4; i++)
            Assert.Equal(0xB003UL + i * 0x1000, memory.U64(0xA000 + i * 8));
        Assert.Equal(0UL, memory.U64(0xA020));
        for (ulong gib = 0; gib < 4; gib++)
        {
            ulong directory = 0xB000 + gib * 0x1000;
            Assert.Equal(gib * GiB | 0x83, memory.U64(directory));
            Assert.Equal(gib * GiB + 511 * 2 * MiB | 0x83, memory.U64(directory + 511 * 8));
        }
    }

    [Fact]
    public void DescriptorDecoderReadsCodeDataAndTss()
    {
        var code = new SegmentDescriptor(0x00AF9B000000FFFF);
        Assert.Equal(0u, code.Base);
        Assert.Equal(0xFFFFFFFFu, code.Limit);
        Assert.Equal(0xB, code.Type);
        Assert.True(code.IsCodeOrData);
        Assert.Equal(0, code.Dpl);
        Assert.True(code.IsPresent);
        Assert.False(code.Available);
        Assert.True(code.IsLongMode);
        Assert.False(code.IsDefaultSize32);
        Assert.True(code.IsPageGranular);

        var data = new SegmentDescriptor(0x00CF93000000FFFF);
        Assert.Equal(0x3, data.Type);
        Assert.False(data.IsLongMode);
        Assert.True(data.IsDefaultSize32);

        var tss = new SegmentDescriptor(0x008F8B000000FFFF);
        Assert.False(tss.IsCodeOrData);
        Assert.Equal(0xB, tss.Type); // busy TSS, as VMX requires of TR

        var odd = new SegmentDescriptor(0x1255_F234_5678_9ABC);
        Assert.Equal(0x1234_5678u, odd.Base);
        Assert.Equal(0x5_9ABCu, odd.LimitField);
        Assert.Equal(0x5_9ABCu, odd.Limit); // G clear: bytes
        Assert.Equal(3, odd.Dpl);
        Assert.True(odd.IsCodeOrData);
        Assert.Equal(0x2, odd.Type);
        Assert.True(odd.IsPresent);
        Assert.True(odd.Available);
        Assert.False(odd.IsLongMode);
        Assert.True(odd.IsDefaultSize32);
        Assert.False(odd.IsPageGranular);
    }
}
