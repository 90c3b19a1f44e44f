using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

public sealed class X87ControlTests
{
    private static EmulationOutcome Run(FakeVcpuState s) => FallbackEmulator.Run(s);

    [Fact]
    public void FnclexClearsExceptionFlagsSummaryAndBusyOnly()
    {
        var s = new FakeVcpuState().WithCode(0xDB, 0xE2);
        XsaveArea.SetFsw(s.Xsave, 0xB8FF);
        var o = Run(s);
        Assert.True(o.Handled, o.Failure);
        Assert.Equal("FNCLEX", o.Name);
        Assert.Equal(0x3800, XsaveArea.GetFsw(s.Xsave));
        Assert.Equal(FakeVcpuState.Code + 2, s.Regs.Rip);
    }

    [Fact]
    public void FwaitIsANoOpWithoutPendingExceptions()
    {
        var s = new FakeVcpuState().WithCode(0x9B);
        XsaveArea.SetFsw(s.Xsave, 0x0001); // masked flag only: ES clear
        Assert.True(Run(s).Handled);
        Assert.Equal(FakeVcpuState.Code + 1, s.Regs.Rip);
        Assert.Empty(s.Injected);
    }

    [Fact]
    public void FwaitWithAPendingUnmaskedExceptionRaisesMfWithoutMovingRip()
    {
        var s = new FakeVcpuState().WithCode(0x9B);
        XsaveArea.SetFsw(s.Xsave, 0x8081);
        var o = Run(s);
        Assert.True(o.Handled);
        Assert.Equal(GuestException.X87Error, Assert.Single(s.Injected).Vector);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
        Assert.Equal(0, s.SetRegsCalls);
    }

    [Fact]
    public void FclexWaitsFirst()
    {
        var s = new FakeVcpuState().WithCode(0x9B, 0xDB, 0xE2);
        XsaveArea.SetFsw(s.Xsave, 0x8081);
        Run(s);
        Assert.Equal(GuestException.X87Error, Assert.Single(s.Injected).Vector);
        Assert.Equal(0x8081, XsaveArea.GetFsw(s.Xsave));
    }

    [Fact]
    public void FninitResetsControlStatusAndTags()
    {
        var s = new FakeVcpuState().WithCode(0xDB, 0xE3);
        XsaveArea.SetFcw(s.Xsave, 0x0000);
        XsaveArea.SetFsw(s.Xsave, 0x3801);
        XsaveArea.SetFtw(s.Xsave, 0xFF);
        s.Xsave[8] = 0x42; // FIP
        Assert.True(Run(s).Handled);
        Assert.Equal(0x037F, XsaveArea.GetFcw(s.Xsave));
        Assert.Equal(0, XsaveArea.GetFsw(s.Xsave));
        Assert.Equal(0, XsaveArea.GetFtw(s.Xsave));
        Assert.Equal(0, s.Xsave[8]);
    }

    [Fact]
    public void FldcwLoadsFromARipRelativeOperandAndRecomputesTheSummary()
    {
        // fldcw [rip+0x100]: d9 2d 00 01 00 00; the operand is at next RIP + 0x100.
        var s = new FakeVcpuState().WithCode(0xD9, 0x2D, 0x00, 0x01, 0x00, 0x00);
        ulong operand = FakeVcpuState.Code + 6 + 0x100;
        s.Ram[operand] = 0x7E; // unmask IE
        s.Ram[operand + 1] = 0x03;
        XsaveArea.SetFsw(s.Xsave, 0x0001);
        Assert.True(Run(s).Handled);
        Assert.Equal(0x037E, XsaveArea.GetFcw(s.Xsave));
        Assert.Equal(0x8081, XsaveArea.GetFsw(s.Xsave));
        Assert.Equal(FakeVcpuState.Code + 6, s.Regs.Rip);
    }

    [Fact]
    public void FnstcwAndFnstswStoreToMemory()
    {
        var s = new FakeVcpuState().WithCode(0xD9, 0x38); // fnstcw [rax]
        s.Regs.Rax = 0x3000;
        XsaveArea.SetFcw(s.Xsave, 0x027F);
        Assert.True(Run(s).Handled);
        Assert.Equal(0x7F, s.Ram[0x3000]);
        Assert.Equal(0x02, s.Ram[0x3001]);

        var t = new FakeVcpuState().WithCode(0xDD, 0x3B); // fnstsw [rbx]
        t.Regs.Rbx = 0x3010;
        XsaveArea.SetFsw(t.Xsave, 0x4321);
        Assert.True(Run(t).Handled);
        Assert.Equal(0x21, t.Ram[0x3010]);
        Assert.Equal(0x43, t.Ram[0x3011]);
        Assert.Equal(FakeVcpuState.Code + 2, t.Regs.Rip);
    }

    [Fact]
    public void FnstswAxReplacesOnlyAx()
    {
        var s = new FakeVcpuState().WithCode(0xDF, 0xE0);
        s.Regs.Rax = 0x1122_3344_5566_7788;
        XsaveArea.SetFsw(s.Xsave, 0x3800);
        Assert.True(Run(s).Handled);
        Assert.Equal(0x1122_3344_5566_3800UL, s.Regs.Rax);
    }

    [Fact]
    public void EmmsEmptiesTheTagWord()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0x77);
        XsaveArea.SetFtw(s.Xsave, 0xFF);
        var o = Run(s);
        Assert.Equal("EMMS", o.Name);
        Assert.Equal(0, XsaveArea.GetFtw(s.Xsave));
        Assert.Equal(FakeVcpuState.Code + 2, s.Regs.Rip);
    }

    [Fact]
    public void X87InstructionWithCr0TsRaisesNm()
    {
        var s = new FakeVcpuState().WithCode(0xDB, 0xE2);
        s.Sregs.Cr0 |= 8;
        Run(s);
        Assert.Equal(GuestException.DeviceNotAvailable, Assert.Single(s.Injected).Vector);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
    }
}
