using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Kvm;

// Mirrors of <linux/kvm.h> (x86-64). Sizes and offsets are checked against the host's headers by a test
// that compiles a C program; keep field order exactly as the kernel declares it.

[StructLayout(LayoutKind.Sequential)]
public struct KvmUserspaceMemoryRegion
{
    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmSegment
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type;
    public byte Present, Dpl, Db, S, L, G, Avl;
    public byte Unusable;
    public byte Padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmDtable
{
    public ulong Base;
    public ushort Limit;
    public ushort Padding0, Padding1, Padding2;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmSregs
{
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDtable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8;
    public ulong Efer;
    public ulong ApicBase;
    public InterruptBitmap InterruptBitmap;
}

[InlineArray(4)]
public struct InterruptBitmap
{
    private ulong _element;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmFpu
{
    public FpuRegisters Fpr;
    public ushort Fcw;
    public ushort Fsw;
    public byte Ftwx;
    public byte Pad1;
    public ushort LastOpcode;
    public ulong LastIp;
    public ulong LastDp;
    public XmmRegisters Xmm;
    public uint Mxcsr;
    public uint Pad2;
}

[InlineArray(128)]
public struct FpuRegisters
{
    private byte _element;
}

[InlineArray(256)]
public struct XmmRegisters
{
    private byte _element;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmCpuidEntry2
{
    public uint Function;
    public uint Index;
    public uint Flags;
    public uint Eax, Ebx, Ecx, Edx;
    public uint Padding0, Padding1, Padding2;

    /// <summary>KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry applies to one sub-leaf (ECX) only.</summary>
    public const uint FlagSignificantIndex = 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrEntry
{
    public uint Index;
    public uint Reserved;
    public ulong Data;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmIrqLevel
{
    public uint Irq;
    public uint Level;
}

[StructLayout(LayoutKind.Sequential, Size = 64)]
public struct KvmPitConfig
{
    public uint Flags;

    /// <summary>KVM_PIT_SPEAKER_DUMMY: port 0x61 reads work without a real speaker.</summary>
    public const uint SpeakerDummy = 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmTranslation
{
    public ulong LinearAddress;
    public ulong PhysicalAddress;
    public byte Valid;
    public byte Writeable;
    public byte Usermode;
    private byte _pad0, _pad1, _pad2, _pad3, _pad4;
}

[StructLayout(LayoutKind.Sequential, Size = 32)]
public struct KvmIrqfd
{
    public uint Fd;
    public uint Gsi;
    public uint Flags;
    public uint ResampleFd;

    public const uint FlagDeassign = 1;
}

[StructLayout(LayoutKind.Sequential, Size = 64)]
public struct KvmIoeventfd
{
    public ulong Datamatch;
    public ulong Addr;
    public uint Len;
    public int Fd;
    public uint Flags;

    public const uint FlagDatamatch = 1;
    public const uint FlagPio = 2;
    public const uint FlagDeassign = 4;
}

[StructLayout(LayoutKind.Sequential, Size = 32)]
public struct KvmMsi
{
    public uint AddressLo;
    public uint AddressHi;
    public uint Data;
    public uint Flags;
    public uint Devid;
}

[StructLayout(LayoutKind.Sequential, Size = 104)]
public struct KvmEnableCap
{
    public uint Cap;
    public uint Flags;
    public ulong Arg0, Arg1, Arg2, Arg3;
}

[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct KvmDirtyLog
{
    public uint Slot;
    public uint Padding;
    public ulong DirtyBitmap;
}

[StructLayout(LayoutKind.Sequential, Size = 48)]
public struct KvmClockData
{
    public ulong Clock;
    public uint Flags;
    public uint Pad0;
    public ulong Realtime;
    public ulong HostTsc;
}

// The following are saved and restored whole (snapshots, migration); Kiln reads only a few fields of them,
// so they are byte blobs of the kernel's size with typed accessors where needed.

/// <summary>struct kvm_lapic_state: the local APIC's 1 KiB register page.</summary>
[InlineArray(1024)]
public struct KvmLapicState
{
    private byte _element;
}

/// <summary>struct kvm_vcpu_events (64 bytes).</summary>
[InlineArray(64)]
public struct KvmVcpuEvents
{
    private byte _element;
}

/// <summary>struct kvm_debugregs (128 bytes).</summary>
[InlineArray(128)]
public struct KvmDebugRegs
{
    private byte _element;
}

/// <summary>struct kvm_xsave (4 KiB legacy-size form).</summary>
[InlineArray(4096)]
public struct KvmXsave
{
    private byte _element;
}

/// <summary>struct kvm_xcrs (392 bytes).</summary>
[InlineArray(392)]
public struct KvmXcrs
{
    private byte _element;
}

/// <summary>struct kvm_irqchip (520 bytes): chip_id at offset 0, then the PIC or IOAPIC state.</summary>
[InlineArray(520)]
public struct KvmIrqchip
{
    private byte _element;
}

/// <summary>struct kvm_pit_state2 (112 bytes).</summary>
[InlineArray(112)]
public struct KvmPitState2
{
    private byte _element;
}
