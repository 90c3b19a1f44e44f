using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

public sealed class SmapAndSyscallTests
{
    private const ulong Ac = 1UL << 18;
    private static readonly byte[] Clac = [0x0F, 0x01, 0xCA];
    private static readonly byte[] Stac = [0x0F, 0x01, 0xCB];

    [Fact]
    public void ClacClearsAcAndStacSetsIt()
    {
        var s = new FakeVcpuState().WithCode(Stac);
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal("STAC", o.Name);
        Assert.Equal(0x2UL | Ac, s.Regs.Rflags);
        Assert.Equal(FakeVcpuState.Code + 3, s.Regs.Rip);

        s = new FakeVcpuState().WithCode(Clac);
        s.Regs.Rflags = 0x2 | Ac | 0x200;
        o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal("CLAC", o.Name);
        Assert.Equal(0x202UL, s.Regs.Rflags);
        Assert.Equal(FakeVcpuState.Code + 3, s.Regs.Rip);
        Assert.Equal(0, s.SetSregsCalls);
    }

    [Fact]
    public void ClacOutsideRingZeroIsUd()
    {
        var s = new FakeVcpuState().WithCode(Clac);
        s.Sregs.Cs.Selector = 0x33;
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.InvalidOpcode, Assert.Single(s.Injected).Vector);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
    }

    private const ulong Lstar = 0x5000, Idt = 0x3000, KernelStackFrame = 0x8000 - 48, UserRsp = 0x7_7770;
    private const ulong Star = 0x0023_0010_0000_0000, Fmask = 0x4_7700;

    /// <summary>The vCPU as a PVM host leaves it after SYSCALL from user mode faulted on LSTAR: at the first
    /// instruction (CLAC) of the #PF handler, the CPU's fault frame on the kernel stack, CR2 = LSTAR.</summary>
    private static FakeVcpuState AtPageFaultEntry(ulong frameRip = Lstar, ulong frameCs = 0x33, ulong error = 0x15)
    {
        var s = new FakeVcpuState().WithCode(Clac);
        s.Sregs.Efer |= 1; // SCE
        s.Sregs.Idt.Base = Idt;
        s.Sregs.Idt.Limit = 0xFFF;
        WriteGate(s, 14, FakeVcpuState.Code);
        s.Sregs.Cr2 = Lstar;
        s.Regs.Rsp = KernelStackFrame;
        s.Regs.Rcx = 0x40_1234; // SYSCALL's return address
        s.Regs.R11 = 0x246;     // and the user's RFLAGS
        ulong[] frame = [error, frameRip, frameCs, 0x246, UserRsp, 0x2B];
        for (int i = 0; i < frame.Length; i++)
            s.WriteRam64(KernelStackFrame + (ulong)i * 8, frame[i]);
        s.Msrs[0xC000_0081] = Star;
        s.Msrs[0xC000_0082] = Lstar;
        s.Msrs[0xC000_0084] = Fmask;
        return s;
    }

    private static void WriteGate(FakeVcpuState s, int vector, ulong offset)
    {
        ulong address = Idt + (ulong)vector * 16;
        ulong low = (offset & 0xFFFF) | (0x10UL << 16) | (0x8EUL << 40) | ((offset >> 16 & 0xFFFF) << 48);
        s.WriteRam64(address, low);
        s.WriteRam64(address + 8, offset >> 32);
    }

    [Fact]
    public void UserFaultAtLstarBecomesTheSystemCall()
    {
        var s = AtPageFaultEntry();
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal(SyscallFromPageFault.Name, o.Name);
        Assert.Equal(Lstar, s.Regs.Rip);
        Assert.Equal(UserRsp, s.Regs.Rsp);
        Assert.Equal(0x46UL, s.Regs.Rflags); // 0x246 without IF (FMASK)
        Assert.Equal(0x40_1234UL, s.Regs.Rcx);
        Assert.Equal(0x246UL, s.Regs.R11);
        Assert.Equal(0x10, s.Sregs.Cs.Selector);
        Assert.Equal(0, s.Sregs.Cs.Dpl);
        Assert.Equal(1, s.Sregs.Cs.L);
        Assert.Equal(0x18, s.Sregs.Ss.Selector);
        Assert.Equal(0, s.Sregs.Ss.Dpl);
        Assert.Equal(1, s.SetSregsCalls);
        Assert.Empty(s.Injected);
    }

    [Fact]
    public void IbtEntryWithEndbrBeforeClacAlsoMatches()
    {
        var s = AtPageFaultEntry();
        WriteGate(s, 14, FakeVcpuState.Code - 4);
        Assert.Equal(SyscallFromPageFault.Name, FallbackEmulator.Run(s).Name);
    }

    [Theory]
    [InlineData(Lstar, 0x10UL, 0x15UL)]       // the fault came from the kernel
    [InlineData(Lstar + 8, 0x33UL, 0x15UL)]   // a user fault elsewhere (RIP != CR2)
    [InlineData(Lstar, 0x33UL, 0x11UL)]       // error code without the user bit
    public void OtherFaultsAreAPlainClac(ulong frameRip, ulong frameCs, ulong error)
    {
        var s = AtPageFaultEntry(frameRip, frameCs, error);
        if (frameRip != Lstar)
            s.Sregs.Cr2 = frameRip;
        s.Regs.Rflags = 0x2 | Ac;
        var o = FallbackEmulator.Run(s);
        Assert.Equal("CLAC", o.Name);
        Assert.Equal(FakeVcpuState.Code + 3, s.Regs.Rip);
        Assert.Equal(0x2UL, s.Regs.Rflags);
        Assert.Equal(KernelStackFrame, s.Regs.Rsp);
        Assert.Equal(0, s.SetSregsCalls);
    }

    [Fact]
    public void ClacElsewhereThanThePageFaultEntryIsPlain()
    {
        var s = AtPageFaultEntry();
        WriteGate(s, 14, 0x2000);
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
        Assert.Equal(FakeVcpuState.Code + 3, s.Regs.Rip);
    }

    [Fact]
    public void LstarElsewhereIsPlain()
    {
        var s = AtPageFaultEntry();
        s.Msrs[0xC000_0082] = 0x6000;
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
    }

    [Fact]
    public void UnmappedStackOrIdtIsAPlainClacNotAFault()
    {
        var s = AtPageFaultEntry();
        s.Unmapped.Add(KernelStackFrame & ~0xFFFUL);
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
        Assert.Empty(s.Injected);

        s = AtPageFaultEntry();
        s.Unmapped.Add(Idt);
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
        Assert.Empty(s.Injected);

        s = AtPageFaultEntry();
        s.Sregs.Idt.Limit = 14 * 16; // gate 14 cut short
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
    }

    [Fact]
    public void WithoutSyscallEnabledNothingIsConverted()
    {
        var s = AtPageFaultEntry();
        s.Sregs.Efer &= ~1UL;
        Assert.Equal("CLAC", FallbackEmulator.Run(s).Name);
    }
}
