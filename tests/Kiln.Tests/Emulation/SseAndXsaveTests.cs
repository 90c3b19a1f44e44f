using System.Buffers.Binary;
using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

public sealed class SseAndXsaveTests
{
    [Fact]
    public void LdmxcsrLoadsAndStmxcsrStores()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0xAE, 0x10); // ldmxcsr [rax]
        s.Regs.Rax = 0x3000;
        BinaryPrimitives.WriteUInt32LittleEndian(s.Ram.AsSpan(0x3000), 0x1FA0);
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x1FA0u, XsaveArea.GetMxcsr(s.Xsave));
        Assert.Equal(FakeVcpuState.Code + 3, s.Regs.Rip);

        var t = new FakeVcpuState().WithCode(0x0F, 0xAE, 0x18); // stmxcsr [rax]
        t.Regs.Rax = 0x3004;
        Assert.True(FallbackEmulator.Run(t).Handled);
        Assert.Equal(0x1F80u, BinaryPrimitives.ReadUInt32LittleEndian(t.Ram.AsSpan(0x3004)));
    }

    [Fact]
    public void LdmxcsrWithReservedBitsRaisesGpAndChangesNothing()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0xAE, 0x10);
        s.Regs.Rax = 0x3000;
        BinaryPrimitives.WriteUInt32LittleEndian(s.Ram.AsSpan(0x3000), 0x10000 | 0x1F80);
        var before = s.Snapshot();
        var o = FallbackEmulator.Run(s);
        Assert.True(o.Handled);
        Assert.Equal("LDMXCSR -> #GP(0)", o.Name);
        Assert.Equal(new GuestException(GuestException.GeneralProtection, 0), Assert.Single(s.Injected));
        Assert.Equal(before, s.Xsave);
        Assert.Equal(FakeVcpuState.Code, s.Regs.Rip);
    }

    [Fact]
    public void LdmxcsrWithoutOsfxsrIsUd()
    {
        var s = new FakeVcpuState().WithCode(0x0F, 0xAE, 0x10);
        s.Sregs.Cr4 &= ~(1UL << 9);
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.InvalidOpcode, Assert.Single(s.Injected).Vector);
    }

    [Fact]
    public void Fxsave64WritesTheLegacyImageButNotTheReservedTail()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x00); // fxsave64 [rax]
        s.Regs.Rax = 0x4000;
        s.Ram.AsSpan(0x4000, 512).Fill(0xEE);
        s.Xsave.AsSpan(160 + 15 * 16, 16).Fill(0x77); // xmm15
        XsaveArea.SetFtw(s.Xsave, 0x81);
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x7F, s.Ram[0x4000]);
        Assert.Equal(0x81, s.Ram[0x4004]);
        Assert.Equal(0x1F80u, BinaryPrimitives.ReadUInt32LittleEndian(s.Ram.AsSpan(0x4000 + 24)));
        Assert.Equal(0x77, s.Ram[0x4000 + 415]);
        Assert.Equal(0xEE, s.Ram[0x4000 + 416]);
        Assert.Equal(0xEE, s.Ram[0x4000 + 511]);
    }

    [Fact]
    public void FxsaveToAMisalignedAddressIsGp()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x00);
        s.Regs.Rax = 0x4008;
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.GeneralProtection, Assert.Single(s.Injected).Vector);
        Assert.All(s.Ram.AsSpan(0x4000, 512).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Fxrstor64LoadsX87AndSse()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x08); // fxrstor64 [rax]
        s.Regs.Rax = 0x4000;
        var image = s.Ram.AsSpan(0x4000, 512);
        BinaryPrimitives.WriteUInt16LittleEndian(image, 0x027F);
        BinaryPrimitives.WriteUInt16LittleEndian(image[2..], 0x0001);
        image[4] = 0xFF;
        BinaryPrimitives.WriteUInt32LittleEndian(image[24..], 0x1FA0);
        image.Slice(32, 10).Fill(0x11); // st0
        image.Slice(160, 16).Fill(0x5A); // xmm0
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x027F, XsaveArea.GetFcw(s.Xsave));
        Assert.Equal(0x0001, XsaveArea.GetFsw(s.Xsave));
        Assert.Equal(0xFF, XsaveArea.GetFtw(s.Xsave));
        Assert.Equal(0x1FA0u, XsaveArea.GetMxcsr(s.Xsave));
        Assert.Equal(0x11, s.Xsave[32]);
        Assert.Equal(0x5A, s.Xsave[175]);
        Assert.Equal(0xFFFFu, BinaryPrimitives.ReadUInt32LittleEndian(s.Xsave.AsSpan(28))); // MXCSR_MASK kept
    }

    [Fact]
    public void XrstorLoadsX87AndSseComponentsFromMemory()
    {
        // 48 0f ae 2f: xrstor64 [rdi], the instruction a Linux guest stopped on.
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x2F);
        s.Regs.Rdi = 0x5000;
        s.Regs.Rax = 0xFFFF_FFFF;
        s.Regs.Rdx = 0xFFFF_FFFF;
        var area = s.Ram.AsSpan(0x5000, 1024);
        BinaryPrimitives.WriteUInt16LittleEndian(area, 0x027F);
        area[4] = 0x01;
        BinaryPrimitives.WriteUInt32LittleEndian(area[24..], 0x1FC0);
        area.Slice(176, 16).Fill(0xA5); // xmm1
        area[512] = 3;
        s.Xsave.AsSpan(160, 16).Fill(0x99); // old xmm0, overwritten by memory's zeros
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x027F, XsaveArea.GetFcw(s.Xsave));
        Assert.Equal(0x01, XsaveArea.GetFtw(s.Xsave));
        Assert.Equal(0x1FC0u, XsaveArea.GetMxcsr(s.Xsave));
        Assert.Equal(0xA5, s.Xsave[176]);
        Assert.Equal(0, s.Xsave[160]);
        Assert.Equal(3UL, XsaveArea.GetXstateBv(s.Xsave) & 3);
        Assert.Equal(FakeVcpuState.Code + 4, s.Regs.Rip);
    }

    [Fact]
    public void XrstorInitialisesComponentsWhoseXstateBvBitIsClear()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x2F);
        s.Regs.Rdi = 0x5000;
        s.Regs.Rax = 3;
        s.Ram.AsSpan(0x5000 + 160, 256).Fill(0x33);
        BinaryPrimitives.WriteUInt16LittleEndian(s.Ram.AsSpan(0x5000), 0x0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s.Ram.AsSpan(0x5000 + 24), 0x1F80);
        s.Ram[0x5000 + 512] = 0; // both in initial state
        XsaveArea.SetFcw(s.Xsave, 0x0000);
        XsaveArea.SetFtw(s.Xsave, 0xFF);
        s.Xsave.AsSpan(160, 256).Fill(0x44);
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x037F, XsaveArea.GetFcw(s.Xsave));
        Assert.Equal(0, XsaveArea.GetFtw(s.Xsave));
        Assert.All(s.Xsave.AsSpan(160, 256).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void XrstorWithAnUnsupportedXstateBvBitIsGp()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x2F);
        s.Regs.Rdi = 0x5000;
        s.Regs.Rax = 3;
        s.Ram[0x5000 + 512] = 0x83;
        var before = s.Snapshot();
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.GeneralProtection, Assert.Single(s.Injected).Vector);
        Assert.Equal(before, s.Xsave);
    }

    [Fact]
    public void XrstorWithoutOsxsaveIsUd()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x2F);
        s.Sregs.Cr4 &= ~(1UL << 18);
        FallbackEmulator.Run(s);
        Assert.Equal(GuestException.InvalidOpcode, Assert.Single(s.Injected).Vector);
    }

    [Fact]
    public void XsaveWritesRequestedComponentsAndKeepsOtherXstateBvBits()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x27); // xsave64 [rdi]
        s.Regs.Rdi = 0x6000;
        s.Regs.Rax = 2; // SSE only
        s.Ram[0x6000 + 512] = 0x81;
        s.Ram.AsSpan(0x6000, 32).Fill(0xEE);
        s.Xsave.AsSpan(160 + 16, 16).Fill(0x3C);
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x3C, s.Ram[0x6000 + 176]);
        Assert.Equal(0x1F80u, BinaryPrimitives.ReadUInt32LittleEndian(s.Ram.AsSpan(0x6000 + 24)));
        Assert.Equal(0xEE, s.Ram[0x6000]); // x87 not requested: FCW untouched
        Assert.Equal(0x83, s.Ram[0x6000 + 512]);
    }

    [Fact]
    public void XsavecWritesTheCompactedHeaderAndAvxAt576()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xC7, 0x27); // xsavec64 [rdi]
        s.Xcr0 = 7;
        XsaveArea.SetXstateBv(s.Xsave, 7);
        s.Xsave.AsSpan(576, 256).Fill(0x61);
        s.Regs.Rdi = 0x6000;
        s.Regs.Rax = 0xFFFF_FFFF;
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(7UL, s.ReadRam64(0x6000 + 512));
        Assert.Equal(0x8000_0000_0000_0007UL, s.ReadRam64(0x6000 + 520));
        Assert.Equal(0x61, s.Ram[0x6000 + 576]);
        Assert.Equal(0x61, s.Ram[0x6000 + 831]);
    }

    [Fact]
    public void XsaveThenXrstorRoundTripsAvx()
    {
        var s = new FakeVcpuState().WithCode(0x48, 0x0F, 0xAE, 0x2F); // xrstor64 [rdi]
        s.Xcr0 = 7;
        s.Regs.Rdi = 0x6000;
        s.Regs.Rax = 7;
        s.Ram.AsSpan(0x6000 + 576, 256).Fill(0x19);
        s.Ram[0x6000 + 512] = 7;
        BinaryPrimitives.WriteUInt32LittleEndian(s.Ram.AsSpan(0x6000 + 24), 0x1F80);
        Assert.True(FallbackEmulator.Run(s).Handled);
        Assert.Equal(0x19, s.Xsave[576 + 255]);
        Assert.Equal(7UL, XsaveArea.GetXstateBv(s.Xsave));
    }
}
