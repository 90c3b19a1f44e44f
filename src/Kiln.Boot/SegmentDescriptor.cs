namespace Kiln.Boot;

/// <summary>A raw 8-byte GDT code/data/system descriptor, decoded the way the CPU reads it, so the VMM can set
/// hidden segment-register state that matches what reloading the selector from the in-memory GDT would give.</summary>
public readonly record struct SegmentDescriptor(ulong Raw)
{
    /// <summary>Base address (bits 16..39 and 56..63). For a 64-bit system descriptor the high 32 bits of the base
    /// live in the next GDT slot; the boot GDTs use base 0.</summary>
    public uint Base => (uint)(((Raw >> 16) & 0xFF_FFFF) | (((Raw >> 56) & 0xFF) << 24));

    /// <summary>The 20-bit limit field as stored.</summary>
    public uint LimitField => (uint)((Raw & 0xFFFF) | ((Raw >> 32) & 0xF_0000));

    /// <summary>The limit in bytes (offset of the last valid byte): with G set the field counts 4 KiB units.</summary>
    public uint Limit => IsPageGranular ? (LimitField << 12) | 0xFFF : LimitField;

    /// <summary>The 4-bit type: e.g. 0xB execute/read accessed code, 0x3 read/write accessed data,
    /// 0xB busy TSS for a system descriptor.</summary>
    public byte Type => (byte)((Raw >> 40) & 0xF);

    /// <summary>The S bit: true for code/data, false for system descriptors (TSS, LDT, gates).</summary>
    public bool IsCodeOrData => Bit(44);

    public byte Dpl => (byte)((Raw >> 45) & 0x3);

    public bool IsPresent => Bit(47);

    /// <summary>AVL: free for software.</summary>
    public bool Available => Bit(52);

    /// <summary>L: 64-bit code segment.</summary>
    public bool IsLongMode => Bit(53);

    /// <summary>D/B: 32-bit default operand size (code) or 32-bit stack (data).</summary>
    public bool IsDefaultSize32 => Bit(54);

    /// <summary>G: the limit counts 4 KiB units.</summary>
    public bool IsPageGranular => Bit(55);

    private bool Bit(int index) => ((Raw >> index) & 1) != 0;

    public override string ToString() => $"0x{Raw:x16} (base 0x{Base:x}, limit 0x{Limit:x}, type 0x{Type:x})";
}
