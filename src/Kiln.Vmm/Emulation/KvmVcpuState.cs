using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Emulation;

/// <summary><see cref="IVcpuState"/> over a stopped KVM vCPU and the guest's RAM: one ioctl per call, and every
/// memory access bounds-checked against RAM.</summary>
internal sealed class KvmVcpuState(Vcpu vcpu, GuestMemory memory) : IVcpuState
{
    public KvmRegs GetRegs() => vcpu.GetRegs();
    public void SetRegs(in KvmRegs regs) => vcpu.SetRegs(regs);
    public KvmSregs GetSregs() => vcpu.GetSregs();
    public void SetSregs(in KvmSregs sregs) => vcpu.SetSregs(sregs);

    public ulong GetMsr(uint index)
    {
        Span<KvmMsrEntry> entry = [new KvmMsrEntry { Index = index }];
        return vcpu.GetMsrs(entry) == 1 ? entry[0].Data : 0;
    }

    public byte[] GetXsave()
    {
        var xsave = vcpu.GetXsave();
        return ((ReadOnlySpan<byte>)xsave).ToArray();
    }

    public void SetXsave(byte[] xsave)
    {
        var buffer = new KvmXsave();
        xsave.AsSpan(0, Math.Min(xsave.Length, 4096)).CopyTo(buffer);
        vcpu.SetXsave(buffer);
    }

    /// <summary>struct kvm_xcrs: nr_xcrs, flags, then {u32 xcr, u32 reserved, u64 value}[16].</summary>
    public ulong GetXcr0()
    {
        var xcrs = vcpu.GetXcrs();
        ReadOnlySpan<byte> raw = xcrs;
        uint count = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(raw), 16);
        for (int i = 0; i < count; i++)
        {
            var entry = raw.Slice(8 + i * 16, 16);
            if (BinaryPrimitives.ReadUInt32LittleEndian(entry) == 0)
                return BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
        }
        return XsaveArea.X87;
    }

    /// <summary>KVM's XSAVE image uses the host's standard-format layout, so the host's CPUID leaf 0xD describes it.</summary>
    public XsaveComponent? GetXsaveComponent(int index)
    {
        if (!X86Base.IsSupported || index < 2 || index > 62)
            return null;
        var (eax, ebx, ecx, _) = X86Base.CpuId(0xD, index);
        return eax == 0 ? null : new XsaveComponent(ebx, eax, (ecx & 2) != 0);
    }

    public PageTranslation Translate(ulong linear)
    {
        try
        {
            var t = vcpu.Translate(linear);
            return new PageTranslation(t.Valid != 0, t.PhysicalAddress, t.Writeable != 0, t.Usermode != 0);
        }
        catch (KvmException)
        {
            return default;
        }
    }

    public bool TryReadPhysical(ulong physical, Span<byte> destination)
    {
        if (!InRam(physical, destination.Length))
            return false;
        memory.Read(new GuestAddress(physical), destination);
        return true;
    }

    public bool TryWritePhysical(ulong physical, ReadOnlySpan<byte> source)
    {
        if (!InRam(physical, source.Length))
            return false;
        memory.Write(new GuestAddress(physical), source);
        return true;
    }

    private bool InRam(ulong physical, int length) =>
        physical <= ulong.MaxValue - (ulong)length && memory.IsValid(new GuestAddress(physical), (ulong)length);

    /// <summary>struct kvm_vcpu_events: exception.injected@0, nr@1, has_error_code@2, pending@3, error_code@4.
    /// CR2 for a #PF goes in through KVM_SET_SREGS first (no exception-payload capability needed).</summary>
    public void InjectException(GuestException exception)
    {
        if (exception.Cr2 is ulong cr2)
        {
            var sregs = vcpu.GetSregs();
            sregs.Cr2 = cr2;
            vcpu.SetSregs(sregs);
        }
        var events = vcpu.GetVcpuEvents();
        Span<byte> raw = events;
        raw[0] = 1;
        raw[1] = exception.Vector;
        raw[2] = exception.ErrorCode.HasValue ? (byte)1 : (byte)0;
        raw[3] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(raw[4..], exception.ErrorCode ?? 0);
        vcpu.SetVcpuEvents(events);
    }
}
