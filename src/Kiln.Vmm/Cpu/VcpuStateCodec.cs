using System.Runtime.InteropServices;
using Kiln.Devices.State;
using Kiln.Kvm;

namespace Kiln.Vmm.Cpu;

/// <summary>Saves and restores everything KVM holds for one vCPU: registers, segment and control registers,
/// FPU/XSAVE, XCRs, MSRs (every one KVM lists as saveable, including TSC and kvmclock), the local APIC, pending
/// events, the MP state and the debug registers. Restore order follows what the KVM API requires: MSRs and the
/// APIC after sregs (APIC base), the TSC deadline after the APIC, events last.</summary>
public static class VcpuStateCodec
{
    private const byte Version = 1;
    private const uint MsrTscDeadline = 0x6E0;

    public static void Save(Vcpu vcpu, ReadOnlySpan<uint> saveableMsrs, StateWriter w)
    {
        w.WriteByte(Version);
        w.WriteUInt32((uint)vcpu.Id);
        WriteStruct(w, vcpu.GetRegs());
        WriteStruct(w, vcpu.GetSregs());
        WriteStruct(w, vcpu.GetFpu());
        WriteStruct(w, vcpu.GetXsave());
        WriteStruct(w, vcpu.GetXcrs());
        var msrs = ReadMsrs(vcpu, saveableMsrs);
        w.WriteUInt32((uint)msrs.Length);
        foreach (var m in msrs)
        {
            w.WriteUInt32(m.Index);
            w.WriteUInt64(m.Data);
        }
        WriteStruct(w, vcpu.GetLapic());
        w.WriteUInt32((uint)vcpu.GetMpState());
        WriteStruct(w, vcpu.GetDebugRegs());
        WriteStruct(w, vcpu.GetVcpuEvents());
    }

    public static void Restore(Vcpu vcpu, StateReader r)
    {
        r.ExpectVersion("vcpu", Version);
        uint id = r.ReadUInt32();
        if (id != vcpu.Id)
            throw new StateFormatException($"vcpu state is for vCPU {id}, not vCPU {vcpu.Id}");
        var regs = ReadStruct<KvmRegs>(r);
        var sregs = ReadStruct<KvmSregs>(r);
        var fpu = ReadStruct<KvmFpu>(r);
        var xsave = ReadStruct<KvmXsave>(r);
        var xcrs = ReadStruct<KvmXcrs>(r);
        uint count = r.ReadUInt32();
        if (count > 4096)
            throw new StateFormatException($"vcpu state lists {count} MSRs");
        var msrs = new KvmMsrEntry[count];
        for (int i = 0; i < msrs.Length; i++)
            msrs[i] = new KvmMsrEntry { Index = r.ReadUInt32(), Data = r.ReadUInt64() };
        var lapic = ReadStruct<KvmLapicState>(r);
        var mpState = (KvmMpState)r.ReadUInt32();
        var debugRegs = ReadStruct<KvmDebugRegs>(r);
        var events = ReadStruct<KvmVcpuEvents>(r);

        // Everything is read and checked before KVM is touched, so a bad blob leaves the vCPU as it was.
        vcpu.SetSregs(sregs);
        vcpu.SetRegs(regs);
        vcpu.SetFpu(fpu);
        vcpu.SetXsave(xsave);
        vcpu.SetXcrs(xcrs);
        // The TSC deadline goes after the LAPIC state: KVM ignores a deadline written while the LAPIC timer is not in
        // TSC-deadline mode (a fresh vCPU's is not), so with the rest of the MSRs it was lost and a Linux guest whose
        // next timer event was armed waited for it forever (seen after a live migration: an idle shell never woke).
        vcpu.SetMsrs(msrs.Where(m => m.Index != MsrTscDeadline).ToArray());
        vcpu.SetMpState(mpState);
        vcpu.SetLapic(lapic);
        vcpu.SetMsrs(msrs.Where(m => m.Index == MsrTscDeadline).ToArray());
        vcpu.SetDebugRegs(debugRegs);
        vcpu.SetVcpuEvents(events);
    }

    /// <summary>Reads every listed MSR the vCPU will give; KVM stops a batch at the first it refuses, so a refused
    /// one is skipped and the rest read on.</summary>
    private static KvmMsrEntry[] ReadMsrs(Vcpu vcpu, ReadOnlySpan<uint> indices)
    {
        var result = new List<KvmMsrEntry>(indices.Length);
        var pending = indices.ToArray().Select(i => new KvmMsrEntry { Index = i }).ToArray();
        int start = 0;
        while (start < pending.Length)
        {
            var batch = pending.AsSpan(start);
            int n = vcpu.GetMsrs(batch);
            for (int i = 0; i < n; i++)
                result.Add(batch[i]);
            start += n + 1; // skip the refused one
        }
        return [.. result];
    }

    internal static void WriteStruct<T>(StateWriter w, T value) where T : unmanaged =>
        w.WriteBytes(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    internal static T ReadStruct<T>(StateReader r) where T : unmanaged
    {
        T value = default;
        r.ReadBytes(MemoryMarshal.AsBytes(new Span<T>(ref value)));
        return value;
    }
}
