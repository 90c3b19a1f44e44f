using System.Runtime.CompilerServices;

namespace Kiln.Kvm;

/// <summary>A view of a vCPU's mmap'd struct kvm_run. Offsets are those of &lt;linux/kvm.h&gt; (checked by a test).
/// Only the owning vCPU thread touches it.</summary>
public readonly unsafe ref struct KvmRun
{
    // Offsets into struct kvm_run.
    public const int ImmediateExitOffset = 1;
    public const int ExitReasonOffset = 8;
    public const int UnionOffset = 32;
    // Offsets inside the exit union, per exit kind.
    public const int IoDirection = 0, IoSize_ = 1, IoPort_ = 2, IoCount_ = 4, IoDataOffset = 8;
    public const int MmioPhysAddr = 0, MmioData_ = 8, MmioLen = 16, MmioIsWrite_ = 20;
    public const int InternalSuberror_ = 0, InternalNdata = 4, InternalData_ = 8;
    public const int SystemEventType_ = 0;
    private readonly byte* _run;
    private readonly int _size;

    internal KvmRun(byte* run, int size)
    {
        _run = run;
        _size = size;
    }

    // SAFETY: every accessor reads at a fixed offset inside kvm_run's mapping (KVM_GET_VCPU_MMAP_SIZE bytes, more than any offset here + 8); the I/O data offset comes from KVM itself.
    public KvmExitReason ExitReason => (KvmExitReason)Unsafe.ReadUnaligned<uint>(_run + ExitReasonOffset);

    // io: direction u8, size u8, port u16, count u32, data_offset u64
    public bool IoIsOut => _run[UnionOffset + IoDirection] == 1;
    public int IoSize => _run[UnionOffset + IoSize_];
    public ushort IoPort => Unsafe.ReadUnaligned<ushort>(_run + UnionOffset + IoPort_);
    public uint IoCount => Unsafe.ReadUnaligned<uint>(_run + UnionOffset + IoCount_);

    /// <summary>The PIO data area (size * count bytes) inside the kvm_run mapping. The kernel sets the offset;
    /// it is still checked so a bad value cannot make us touch memory past the mapping.</summary>
    public Span<byte> IoData
    {
        get
        {
            ulong offset = Unsafe.ReadUnaligned<ulong>(_run + UnionOffset + IoDataOffset);
            ulong length = (ulong)IoSize * IoCount;
            if (offset > (ulong)_size || length > (ulong)_size - offset)
                throw new KvmException($"kvm_run io data out of range (offset {offset}, length {length})");
            return new Span<byte>(_run + offset, (int)length);
        }
    }

    // mmio: phys_addr u64, data[8], len u32, is_write u8
    public ulong MmioAddress => Unsafe.ReadUnaligned<ulong>(_run + UnionOffset + MmioPhysAddr);
    public Span<byte> MmioData => new(_run + UnionOffset + MmioData_, Math.Min(8, (int)Unsafe.ReadUnaligned<uint>(_run + UnionOffset + MmioLen)));
    public bool MmioIsWrite => _run[UnionOffset + MmioIsWrite_] != 0;

    // fail_entry: hardware_entry_failure_reason u64, cpu u32
    public ulong FailEntryReason => Unsafe.ReadUnaligned<ulong>(_run + UnionOffset);

    // internal: suberror u32, ndata u32, data[16] u64
    public uint InternalSuberror => Unsafe.ReadUnaligned<uint>(_run + UnionOffset + InternalSuberror_);
    public ReadOnlySpan<ulong> InternalData
    {
        get
        {
            uint n = Math.Min(16u, Unsafe.ReadUnaligned<uint>(_run + UnionOffset + InternalNdata));
            return new ReadOnlySpan<ulong>(_run + UnionOffset + InternalData_, (int)n);
        }
    }

    // system_event: type u32, ndata u32, data[]
    public KvmSystemEvent SystemEventType => (KvmSystemEvent)Unsafe.ReadUnaligned<uint>(_run + UnionOffset + SystemEventType_);

    public bool ImmediateExit => Volatile.Read(ref _run[ImmediateExitOffset]) != 0;
}
