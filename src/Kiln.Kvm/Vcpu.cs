using System.Runtime.InteropServices;
using Kiln.Interop;

namespace Kiln.Kvm;

/// <summary>A KVM vCPU handle and its kvm_run page. Run and the exit view belong to the vCPU's own thread;
/// <see cref="RequestImmediateExit"/> may be called from any thread.</summary>
public sealed unsafe class Vcpu : IDisposable
{
    private readonly FileDescriptor _fd;
    private readonly byte* _run;
    private readonly int _runSize;
    private bool _disposed;

    internal Vcpu(int id, FileDescriptor fd, int runSize)
    {
        Id = id;
        _fd = fd;
        _runSize = runSize;
        // SAFETY: the mapping is exactly KVM_GET_VCPU_MMAP_SIZE bytes; KvmRun bounds every access by that size.
        _run = (byte*)Mman.Map((nuint)runSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, fd.Number);
    }

    public int Id { get; }

    public KvmRun RunState => new(_run, _runSize);

    /// <summary>Enters the guest. Returns false when interrupted by a signal (a kick) instead of an exit.</summary>
    public bool Run()
    {
        if (Libc.ioctl(_fd.Number, KvmIoctls.Run, 0) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno is Errno.EINTR or Errno.EAGAIN)
            return false;
        throw new KvmException("KVM_RUN", errno);
    }

    /// <summary>Makes the next (or current, once kicked) KVM_RUN return at once with EINTR.</summary>
    public void RequestImmediateExit(bool value = true) =>
        Volatile.Write(ref _run[KvmRun.ImmediateExitOffset], value ? (byte)1 : (byte)0);

    public KvmRegs GetRegs() { KvmRegs r; KvmIoctl.Call(_fd, KvmIoctls.GetRegs, &r, "KVM_GET_REGS"); return r; }
    // SAFETY: each KVM_SET_* below reads exactly one struct of the pinned argument's type, which mirrors <linux/kvm.h> (checked by KvmAbiTests).
    public void SetRegs(in KvmRegs regs) { fixed (KvmRegs* p = &regs) KvmIoctl.Call(_fd, KvmIoctls.SetRegs, p, "KVM_SET_REGS"); }

    public KvmSregs GetSregs() { KvmSregs s; KvmIoctl.Call(_fd, KvmIoctls.GetSregs, &s, "KVM_GET_SREGS"); return s; }
    public void SetSregs(in KvmSregs sregs) { fixed (KvmSregs* p = &sregs) KvmIoctl.Call(_fd, KvmIoctls.SetSregs, p, "KVM_SET_SREGS"); }

    public KvmFpu GetFpu() { KvmFpu f; KvmIoctl.Call(_fd, KvmIoctls.GetFpu, &f, "KVM_GET_FPU"); return f; }
    public void SetFpu(in KvmFpu fpu) { fixed (KvmFpu* p = &fpu) KvmIoctl.Call(_fd, KvmIoctls.SetFpu, p, "KVM_SET_FPU"); }

    public KvmLapicState GetLapic() { KvmLapicState l; KvmIoctl.Call(_fd, KvmIoctls.GetLapic, &l, "KVM_GET_LAPIC"); return l; }
    public void SetLapic(in KvmLapicState lapic) { fixed (KvmLapicState* p = &lapic) KvmIoctl.Call(_fd, KvmIoctls.SetLapic, p, "KVM_SET_LAPIC"); }

    public KvmMpState GetMpState() { uint s; KvmIoctl.Call(_fd, KvmIoctls.GetMpState, &s, "KVM_GET_MP_STATE"); return (KvmMpState)s; }
    public void SetMpState(KvmMpState state) { uint s = (uint)state; KvmIoctl.Call(_fd, KvmIoctls.SetMpState, &s, "KVM_SET_MP_STATE"); }

    public KvmVcpuEvents GetVcpuEvents() { KvmVcpuEvents e; KvmIoctl.Call(_fd, KvmIoctls.GetVcpuEvents, &e, "KVM_GET_VCPU_EVENTS"); return e; }
    public void SetVcpuEvents(in KvmVcpuEvents events) { fixed (KvmVcpuEvents* p = &events) KvmIoctl.Call(_fd, KvmIoctls.SetVcpuEvents, p, "KVM_SET_VCPU_EVENTS"); }

    public KvmDebugRegs GetDebugRegs() { KvmDebugRegs d; KvmIoctl.Call(_fd, KvmIoctls.GetDebugRegs, &d, "KVM_GET_DEBUGREGS"); return d; }
    public void SetDebugRegs(in KvmDebugRegs regs) { fixed (KvmDebugRegs* p = &regs) KvmIoctl.Call(_fd, KvmIoctls.SetDebugRegs, p, "KVM_SET_DEBUGREGS"); }

    public KvmXsave GetXsave() { KvmXsave x; KvmIoctl.Call(_fd, KvmIoctls.GetXsave, &x, "KVM_GET_XSAVE"); return x; }
    public void SetXsave(in KvmXsave xsave) { fixed (KvmXsave* p = &xsave) KvmIoctl.Call(_fd, KvmIoctls.SetXsave, p, "KVM_SET_XSAVE"); }

    public KvmXcrs GetXcrs() { KvmXcrs x; KvmIoctl.Call(_fd, KvmIoctls.GetXcrs, &x, "KVM_GET_XCRS"); return x; }
    public void SetXcrs(in KvmXcrs xcrs) { fixed (KvmXcrs* p = &xcrs) KvmIoctl.Call(_fd, KvmIoctls.SetXcrs, p, "KVM_SET_XCRS"); }

    public uint GetTscKhz() => (uint)KvmIoctl.Call(_fd, KvmIoctls.GetTscKhz, 0, "KVM_GET_TSC_KHZ");

    /// <summary>Translates a guest-virtual address through the vCPU's current page tables.</summary>
    public KvmTranslation Translate(ulong linear)
    {
        var t = new KvmTranslation { LinearAddress = linear };
        KvmIoctl.Call(_fd, KvmIoctls.Translate, &t, "KVM_TRANSLATE");
        return t;
    }

    public void SetCpuid(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        var buffer = new byte[8 + entries.Length * sizeof(KvmCpuidEntry2)];
        // SAFETY: the ioctl reads/writes the header at p plus the entries it announces, all within buffer.
        fixed (byte* p = buffer)
        {
            *(uint*)p = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry2>(p + 8, entries.Length));
            KvmIoctl.Call(_fd, KvmIoctls.SetCpuid2, p, "KVM_SET_CPUID2");
        }
    }

    /// <summary>Reads the given MSRs in place; returns how many the kernel read (it stops at the first it cannot).</summary>
    public int GetMsrs(Span<KvmMsrEntry> entries) => MsrIoctl(entries, KvmIoctls.GetMsrs, "KVM_GET_MSRS");

    /// <summary>Writes the MSRs; throws if the kernel refused any of them.</summary>
    public void SetMsrs(ReadOnlySpan<KvmMsrEntry> entries)
    {
        var copy = entries.ToArray();
        int n = MsrIoctl(copy, KvmIoctls.SetMsrs, "KVM_SET_MSRS");
        if (n != copy.Length)
            throw new KvmException($"KVM_SET_MSRS: the kernel refused MSR 0x{copy[n].Index:x}");
    }

    private int MsrIoctl(Span<KvmMsrEntry> entries, ulong request, string name)
    {
        var buffer = new byte[8 + entries.Length * sizeof(KvmMsrEntry)];
        // SAFETY: the ioctl reads/writes the header at p plus the entries it announces, all within buffer.
        fixed (byte* p = buffer)
        {
            *(uint*)p = (uint)entries.Length;
            var view = new Span<KvmMsrEntry>(p + 8, entries.Length);
            entries.CopyTo(view);
            int n = KvmIoctl.Call(_fd, request, p, name);
            view.CopyTo(entries);
            return n;
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Mman.Unmap(_run, (nuint)_runSize);
        _fd.Dispose();
    }
}
