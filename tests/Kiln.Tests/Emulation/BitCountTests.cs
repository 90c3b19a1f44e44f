using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

public sealed class BitCountTests
{
    [Fact]
    public void Popcnt64FromRegisterAsTheLinuxKernelUsesIt()
    {
        // f3 48 0f b8 c7: popcnt rax, rdi (the instruction that stopped the kit kernel on this host)
        var s = new FakeVcpuState().WithCode(0xF3, 0x48, 0x0F, 0xB8, 0xC7);
        s.Regs.Rdi = 0xF0F0_0000_0000_0101;
        s.Regs.Rax = 123;
        s.Regs.Rflags = 0x2 | 0x1 | 0x40 | 0x800; // CF, ZF, OF set: all must clear
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal("POPCNT", o.Name);
        Assert.Equal(10UL, s.Regs.Rax);
        Assert.Equal(0x2UL, s.Regs.Rflags);
        Assert.Equal(FakeVcpuState.Code + 5, s.Regs.Rip);
    }

    [Fact]
    public void Popcnt32OfZeroSetsZfAndZeroExtends()
    {
        var s = new FakeVcpuState().WithCode(0xF3, 0x0F, 0xB8, 0xC1); // popcnt eax, ecx
        s.Regs.Rcx = 0xFFFF_FFFF_0000_0000; // upper half is not part of ecx
        s.Regs.Rax = ulong.MaxValue;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0UL, s.Regs.Rax);
        Assert.Equal(0x42UL, s.Regs.Rflags & 0x8D5 | 0x2);
    }

    [Fact]
    public void Popcnt16FromMemoryKeepsTheUpperBits()
    {
        var s = new FakeVcpuState().WithCode(0x66, 0xF3, 0x0F, 0xB8, 0x06); // popcnt ax, [rsi]
        s.Regs.Rsi = 0x7000;
        s.WriteRam64(0x7000, 0x0000_0000_0000_8007);
        s.Regs.Rax = 0x1234_5678_9ABC_DEF0;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x1234_5678_9ABC_0004UL, s.Regs.Rax);
    }

    [Theory]
    [InlineData(0x0000_0000_0001_0000UL, 47UL, 16UL)]
    [InlineData(0x8000_0000_0000_0000UL, 0UL, 63UL)]
    public void LzcntAndTzcnt64(ulong value, ulong leading, ulong trailing)
    {
        var l = new FakeVcpuState().WithCode(0xF3, 0x48, 0x0F, 0xBD, 0xC7); // lzcnt rax, rdi
        l.Regs.Rdi = value;
        Assert.True(FallbackEmulator.Run(l).Handled);
        Assert.Equal(leading, l.Regs.Rax);
        var t = new FakeVcpuState().WithCode(0xF3, 0x48, 0x0F, 0xBC, 0xC7); // tzcnt rax, rdi
        t.Regs.Rdi = value;
        Assert.True(FallbackEmulator.Run(t).Handled);
        Assert.Equal(trailing, t.Regs.Rax);
    }

    [Fact]
    public void TzcntOfZeroGivesTheWidthAndSetsCf()
    {
        var s = new FakeVcpuState().WithCode(0xF3, 0x0F, 0xBC, 0xC7); // tzcnt eax, edi
        s.Regs.Rdi = 0;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(32UL, s.Regs.Rax);
        Assert.Equal(1UL, s.Regs.Rflags & 1);
        Assert.Equal(0UL, s.Regs.Rflags & 0x40);
    }
}
