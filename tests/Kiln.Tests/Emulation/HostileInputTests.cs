using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

/// <summary>Guest-controlled addresses and bytes: always a clean outcome, never an exception, and on failure an
/// untouched vCPU.</summary>
public sealed class HostileInputTests
{
    private static void AssertUnchangedFailure(FakeVcpuState s, EmulationOutcome o, string reasonPart)
    {
        Assert.False(o.Handled);
        Assert.Contains(reasonPart, o.Failure);
        Assert.Equal(0, s.SetRegsCalls);
        Assert.Equal(0, s.SetXsaveCalls);
        Assert.Empty(s.Injected);
    }

    [Fact]
    public void RipOutsideRamIsAFetchFailure()
    {
        var s = new FakeVcpuState();
        s.Regs.Rip = 0x8000_0000;
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "outside RAM");
    }

    [Fact]
    public void RipOnAnUnmappedPageIsAFetchFailure()
    {
        var s = new FakeVcpuState();
        s.Regs.Rip = 0xFFFF_8000_0000_0000;
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "not mapped");
    }

    [Fact]
    public void UnknownInstructionNamesMnemonicAndBytes()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0x0B);
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "UD2 (0f 0b)");
    }

    [Fact]
    public void GarbageBytesAreNotEmulated()
    {
        var s = new FakeVcpuState().WithCode(0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0xF0, 0x90);
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "");
    }

    [Fact]
    public void InstructionCrossingIntoAnotherPhysicalPageIsFetchedPageByPage()
    {
        var s = new FakeVcpuState();
        s.Regs.Rip = 0x1FFE; // 48 0f | ae 08 on the next page, which maps to physical 0x9000
        s.Ram[0x1FFE] = 0x48;
        s.Ram[0x1FFF] = 0x0F;
        s.Pages[0x2000] = new PageTranslation(true, 0x9000, true, true);
        s.Ram[0x9000] = 0xAE;
        s.Ram[0x9001] = 0x00; // fxsave64 [rax]
        s.Regs.Rax = 0x4000;
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal(0x2002UL, s.Regs.Rip);
    }

    [Fact]
    public void InstructionCutShortByAnUnmappedPageIsAFailure()
    {
        var s = new FakeVcpuState();
        s.Regs.Rip = 0x1FFE;
        s.Ram[0x1FFE] = 0x48;
        s.Ram[0x1FFF] = 0x0F;
        s.Unmapped.Add(0x2000);
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "cut short");
    }

    [Fact]
    public void OperandOutsideRamIsNotEmulated()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x08); // fxrstor64 [rax]
        s.Regs.Rax = 0xF000_0000;
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "outside RAM");
    }

    [Fact]
    public void OperandCrossingIntoRamEndIsNotEmulatedAndWritesNothing()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x00); // fxsave64 [rax], 416 bytes
        s.Regs.Rax = (ulong)s.Ram.Length - 256;
        AssertUnchangedFailure(s, FallbackEmulator.Run(s), "outside RAM");
        Assert.All(s.Ram.AsSpan(s.Ram.Length - 256).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void OperandOnANotPresentPageIsAPageFault()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0xAE, 0x18); // stmxcsr [rax]
        s.Regs.Rax = 0x3FFE;
        s.Unmapped.Add(0x4000);
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled);
        Assert.Equal(new GuestException(GuestException.PageFault, 2, 0x4000), Assert.Single(s.Injected));
        Assert.Equal(0, s.Ram[0x3FFE]);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
    }

    [Fact]
    public void SegmentBaseAppliesToFsInLongMode()
    {
        var s = new FakeVcpuState().WithCode(0x64, 0x0F, 0xAE, 0x18); // stmxcsr fs:[rax]
        s.Sregs.Fs.Base = 0x8000;
        s.Regs.Rax = 0x10;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x80, s.Ram[0x8010]);
        Assert.Equal(FakeVcpuState.Code + 4, s.Regs.Rip);
    }
}
