using System.Buffers.Binary;
using Kiln.Kvm;
using Kiln.Vmm.Emulation;

namespace Kiln.Tests.Emulation;

/// <summary>A vCPU in 64-bit long mode at ring 0 with 1 MiB of RAM at 0, identity-mapped (writable) up to 4 GiB
/// unless a page is overridden or unmapped. Records what the emulator commits.</summary>
internal sealed class FakeVcpuState : IVcpuState
{
    public const ulong Code = 0x1000;
    public readonly byte[] Ram = new byte[1 << 20];
    public readonly Dictionary<ulong, PageTranslation> Pages = [];
    public readonly HashSet<ulong> Unmapped = [];
    public KvmRegs Regs;
    public KvmSregs Sregs;
    public byte[] Xsave = new byte[4096];
    public ulong Xcr0 = 3;
    public readonly List<GuestException> Injected = [];
    public int SetRegsCalls, SetXsaveCalls, SetSregsCalls;
    public readonly Dictionary<uint, ulong> Msrs = [];

    public FakeVcpuState()
    {
        Regs.Rip = Code;
        Regs.Rflags = 0x2;
        Sregs.Cs.L = 1;
        Sregs.Cs.Selector = 0x08;
        Sregs.Efer = 0x500;                                   // LME | LMA
        Sregs.Cr0 = 0x80050033;                               // PG | WP | NE | ET | MP | PE
        Sregs.Cr4 = 0x40620;                                  // OSXSAVE | OSXMMEXCPT | OSFXSR | PAE
        XsaveArea.SetFcw(Xsave, 0x037F);
        XsaveArea.SetMxcsr(Xsave, 0x1F80);
        BinaryPrimitives.WriteUInt32LittleEndian(Xsave.AsSpan(28), 0xFFFF);
        XsaveArea.SetXstateBv(Xsave, 3);
    }

    public FakeVcpuState WithCode(params byte[] code)
    {
        code.CopyTo(Ram, (int)Regs.Rip);
        return this;
    }

    public byte[] Snapshot() => (byte[])Xsave.Clone();

    public KvmRegs GetRegs() => Regs;
    public void SetRegs(in KvmRegs regs) { Regs = regs; SetRegsCalls++; }
    public KvmSregs GetSregs() => Sregs;
    public void SetSregs(in KvmSregs sregs) { Sregs = sregs; SetSregsCalls++; }
    public ulong GetMsr(uint index) => Msrs.GetValueOrDefault(index);
    public byte[] GetXsave() => (byte[])Xsave.Clone();
    public void SetXsave(byte[] xsave) { Xsave = (byte[])xsave.Clone(); SetXsaveCalls++; }
    public ulong GetXcr0() => Xcr0;

    public XsaveComponent? GetXsaveComponent(int index) => index == 2 ? new XsaveComponent(576, 256, false) : null;

    public PageTranslation Translate(ulong linear)
    {
        ulong page = linear & ~0xFFFUL;
        if (Unmapped.Contains(page) || linear >= 1UL << 32)
            return default;
        if (Pages.TryGetValue(page, out var t))
            return t with { Physical = t.Physical + (linear & 0xFFF) };
        return new PageTranslation(true, linear, true, true);
    }

    public bool TryReadPhysical(ulong physical, Span<byte> destination)
    {
        if (physical > (ulong)Ram.Length || (ulong)destination.Length > (ulong)Ram.Length - physical)
            return false;
        Ram.AsSpan((int)physical, destination.Length).CopyTo(destination);
        return true;
    }

    public bool TryWritePhysical(ulong physical, ReadOnlySpan<byte> source)
    {
        if (physical > (ulong)Ram.Length || (ulong)source.Length > (ulong)Ram.Length - physical)
            return false;
        source.CopyTo(Ram.AsSpan((int)physical));
        return true;
    }

    public void InjectException(GuestException exception) => Injected.Add(exception);

    public ulong ReadRam64(ulong address) => BinaryPrimitives.ReadUInt64LittleEndian(Ram.AsSpan((int)address));
    public void WriteRam64(ulong address, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Ram.AsSpan((int)address), value);
}
