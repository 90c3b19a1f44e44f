using Kiln.Boot;
using Kiln.Kvm;
using Kiln.Memory;
using Kiln.Vmm.Cpu;

namespace Kiln.Tests.Vmm;

public sealed class BootCpuStateTests
{
    private static BootEntry Entry(CpuEntryMode mode, ulong code, ulong data) => new()
    {
        Mode = mode, Rip = 0x100000, GdtBase = new GuestAddress(0x500), GdtLimit = 39, Cr3 = 0x9000,
        CodeSelector = 0x10, CodeDescriptor = code, DataSelector = 0x18, DataDescriptor = data,
        TssSelector = 0x20, TssDescriptor = 0x008F89000000FFFF,
    };

    [Fact]
    public void LongModeEntryHasPagingAndA64BitCodeSegment()
    {
        var sregs = new KvmSregs();
        BootCpuState.ApplySegments(ref sregs, Entry(CpuEntryMode.Long64, 0x00AF9B000000FFFF, 0x00CF93000000FFFF));
        Assert.Equal(0x80000011UL, sregs.Cr0);
        Assert.Equal(0x9000UL, sregs.Cr3);
        Assert.Equal(0x20UL, sregs.Cr4);
        Assert.Equal(0x500UL, sregs.Efer);
        Assert.Equal((byte)1, sregs.Cs.L);
        Assert.Equal((byte)0, sregs.Cs.Db);
        Assert.Equal(0xFFFFFFFFu, sregs.Cs.Limit);
        Assert.Equal((ushort)0x10, sregs.Cs.Selector);
        Assert.Equal((ushort)0x18, sregs.Ss.Selector);
        Assert.Equal((byte)3, sregs.Ds.Type);
        Assert.Equal((byte)0xB, sregs.Tr.Type | 2); // available or busy 64-bit TSS
        Assert.Equal(0x500UL, sregs.Gdt.Base);
    }

    [Fact]
    public void ProtectedModeEntryHasNoPaging()
    {
        var sregs = new KvmSregs { Cr3 = 0x1234, Efer = 0x500 };
        BootCpuState.ApplySegments(ref sregs, Entry(CpuEntryMode.Protected32, 0x00CF9B000000FFFF, 0x00CF93000000FFFF));
        Assert.Equal(0x11UL, sregs.Cr0);
        Assert.Equal(0UL, sregs.Cr3);
        Assert.Equal(0UL, sregs.Efer);
        Assert.Equal((byte)0, sregs.Cs.L);
        Assert.Equal((byte)1, sregs.Cs.Db);
        Assert.Equal((byte)1, sregs.Cs.G);
    }
}
