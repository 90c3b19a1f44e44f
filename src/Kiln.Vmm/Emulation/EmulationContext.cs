using Iced.Intel;
using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>One instruction being emulated: the decoded form, working copies of the state it may change, and the
/// memory writes it will make. Nothing reaches the vCPU until <see cref="Commit"/>, so an instruction that faults
/// or cannot be emulated leaves it untouched.</summary>
internal sealed class EmulationContext
{
    private readonly List<(ulong Physical, byte[] Data)> _writes = [];
    private byte[]? _xsave;
    private bool _xsaveDirty;
    private bool _sregsDirty;

    public EmulationContext(IVcpuState state, in Instruction instruction, in KvmRegs regs, in KvmSregs sregs, int bitness)
    {
        State = state;
        Instruction = instruction;
        Regs = regs;
        Sregs = sregs;
        Bitness = bitness;
        Memory = new LinearMemory(this);
    }

    public IVcpuState State { get; }
    public Instruction Instruction { get; }
    public KvmRegs Regs;
    public KvmSregs Sregs { get; private set; }
    public int Bitness { get; }
    public LinearMemory Memory { get; }

    /// <summary>A trap the instruction raises after completing (INT3): injected after RIP has advanced.</summary>
    public GuestException? Trap { get; set; }

    /// <summary>What to count the instruction as when it did something other than its plain effect.</summary>
    public string? CompletedAs { get; set; }

    public int Cpl => Sregs.Cs.Selector & 3;
    public bool LongMode64 => Bitness == 64;

    /// <summary>The vCPU's XSAVE image (standard format), fetched once; changes are written back on commit.</summary>
    public byte[] Xsave => _xsave ??= State.GetXsave();

    public void MarkXsaveDirty() => _xsaveDirty = true;

    /// <summary>New segment and control state, written back on commit (before the registers).</summary>
    public void ReplaceSregs(in KvmSregs sregs)
    {
        Sregs = sregs;
        _sregsDirty = true;
    }

    public ulong Xcr0 => State.GetXcr0();

    public void PlanWrite(ulong physical, byte[] data) => _writes.Add((physical, data));

    public IReadOnlyList<(ulong Physical, byte[] Data)> PlannedWrites => _writes;

    public static GuestFaultException Fault(byte vector, uint? error = null) => new(new GuestException(vector, error));

    /// <summary>RIP past the instruction; EIP wraps outside 64-bit code.</summary>
    public void AdvanceRip()
    {
        ulong next = Regs.Rip + (ulong)Instruction.Length;
        Regs.Rip = Bitness == 64 ? next : next & 0xFFFF_FFFF;
    }

    public void Commit()
    {
        foreach (var (physical, data) in _writes)
            if (!State.TryWritePhysical(physical, data))
                throw new NotEmulatedException($"write to guest-physical 0x{physical:x} left RAM"); // checked when planned
        if (_xsaveDirty && _xsave is not null)
            State.SetXsave(_xsave);
        if (_sregsDirty)
            State.SetSregs(Sregs);
        State.SetRegs(Regs);
        if (Trap is { } trap)
            State.InjectException(trap);
    }
}
