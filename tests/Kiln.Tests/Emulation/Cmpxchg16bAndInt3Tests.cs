using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

public sealed class Cmpxchg16bAndInt3Tests
{
    private static FakeVcpuState Cmpxchg(ulong address, ulong rax, ulong rdx)
    {
        var s = new FakeVcpuState().WithCode(0xF0, 0x48, 0x0F, 0xC7, 0x0E); // lock cmpxchg16b [rsi]
        s.Regs.Rsi = address;
        s.Regs.Rax = rax;
        s.Regs.Rdx = rdx;
        s.Regs.Rbx = 3;
        s.Regs.Rcx = 4;
        s.Regs.Rflags = 0x2 | 0x1; // CF set: must survive
        s.WriteRam64(0x7000, 1);
        s.WriteRam64(0x7008, 2);
        return s;
    }

    [Fact]
    public void EqualStoresRcxRbxAndSetsZf()
    {
        var s = Cmpxchg(0x7000, 1, 2);
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal("CMPXCHG16B", o.Name);
        Assert.Equal(3UL, s.ReadRam64(0x7000));
        Assert.Equal(4UL, s.ReadRam64(0x7008));
        Assert.Equal(0x43UL, s.Regs.Rflags);
        Assert.Equal(FakeVcpuState.Code + 5, s.Regs.Rip);
    }

    [Fact]
    public void DifferentLoadsRdxRaxAndClearsZf()
    {
        var s = Cmpxchg(0x7000, 9, 2);
        s.Regs.Rflags |= 0x40;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(1UL, s.Regs.Rax);
        Assert.Equal(2UL, s.Regs.Rdx);
        Assert.Equal(1UL, s.ReadRam64(0x7000));
        Assert.Equal(0x3UL, s.Regs.Rflags);
    }

    [Fact]
    public void MisalignedOperandIsGp()
    {
        var s = Cmpxchg(0x7008, 1, 2);
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.GeneralProtection, Assert.Single(s.Injected).Vector);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
    }

    [Fact]
    public void ReadOnlyPageIsAWritePageFaultWithCr2()
    {
        var s = Cmpxchg(0x7000, 1, 2);
        s.Pages[0x7000] = new PageTranslation(true, 0x7000, false, false);
        FallbackEmulator.Run(s);
        Assert.Equal(new GuestException(GuestException.PageFault, 3, 0x7000), Assert.Single(s.Injected));
        Assert.Equal(1UL, s.ReadRam64(0x7000));
    }

    [Fact]
    public void Int3AdvancesRipAndInjectsBreakpoint()
    {
        var s = new FakeVcpuState().WithCode(0xCC);
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled);
        Assert.Equal("INT3", o.Name);
        Assert.Equal(FakeVcpuState.Code + 1, s.Regs.Rip);
        Assert.Equal(new GuestException(GuestException.Breakpoint), Assert.Single(s.Injected));
    }

    [Fact]
    public void CountsAreKeptPerMnemonic()
    {
        var fallback = new InstructionFallback(null!);
        Assert.True(fallback.TryEmulate(new FakeVcpuState().WithCode(0xCC), out _));
        Assert.True(fallback.TryEmulate(new FakeVcpuState().WithCode(0xCC), out _));
        Assert.False(fallback.TryEmulate(new FakeVcpuState().WithCode(0x90), out var failure));
        Assert.Contains("NOP", failure);
        Assert.Equal(2, fallback.Counts["INT3"]);
    }
}
