using System.Buffers.Binary;

namespace Kiln.Vmm.Emulation;

/// <summary>Layout of the XSAVE area (Intel SDM vol. 1, 13.4): the 512-byte legacy (FXSAVE) region, the 64-byte
/// header at 512 (XSTATE_BV, XCOMP_BV), then the extended components (AVX at 576 in the standard format).
/// Accessors work on the vCPU's standard-format image from KVM_GET_XSAVE.</summary>
internal static class XsaveArea
{
    public const int LegacySize = 512;
    public const int HeaderOffset = 512;
    public const int ExtendedOffset = 576;
    public const int Fcw = 0, Fsw = 2, Ftw = 4, Fop = 6, Fip = 8, Fdp = 16, Mxcsr = 24, MxcsrMask = 28;
    public const int StOffset = 32, XmmOffset = 160;
    public const ushort DefaultFcw = 0x037F;
    public const uint DefaultMxcsr = 0x1F80;
    public const uint DefaultMxcsrMask = 0xFFBF;
    public const ulong X87 = 1, Sse = 2, Avx = 4;

    public static ushort GetFcw(byte[] a) => BinaryPrimitives.ReadUInt16LittleEndian(a.AsSpan(Fcw));
    public static void SetFcw(byte[] a, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(Fcw), v);
    public static ushort GetFsw(byte[] a) => BinaryPrimitives.ReadUInt16LittleEndian(a.AsSpan(Fsw));
    public static void SetFsw(byte[] a, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(Fsw), v);
    public static byte GetFtw(byte[] a) => a[Ftw];
    public static void SetFtw(byte[] a, byte v) => a[Ftw] = v;
    public static uint GetMxcsr(byte[] a) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(Mxcsr));
    public static void SetMxcsr(byte[] a, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(Mxcsr), v);

    /// <summary>MXCSR bits this CPU accepts (MXCSR_MASK, or the SDM's default 0xFFBF when it is 0).</summary>
    public static uint MxcsrMaskOf(byte[] a)
    {
        uint mask = BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(MxcsrMask));
        return mask == 0 ? DefaultMxcsrMask : mask;
    }

    public static ulong GetXstateBv(ReadOnlySpan<byte> a) => BinaryPrimitives.ReadUInt64LittleEndian(a[HeaderOffset..]);
    public static void SetXstateBv(Span<byte> a, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(a[HeaderOffset..], v);
    public static ulong GetXcompBv(ReadOnlySpan<byte> a) => BinaryPrimitives.ReadUInt64LittleEndian(a[(HeaderOffset + 8)..]);

    /// <summary>Marks components as in use (KVM_SET_XSAVE treats a clear XSTATE_BV bit as "initial state").</summary>
    public static void MarkInUse(byte[] a, ulong components) => SetXstateBv(a, GetXstateBv(a) | components);

    /// <summary>x87 initial state (FNINIT/XRSTOR init): FCW 037F, everything else 0, all registers empty.</summary>
    public static void InitX87(byte[] a, bool clearRegisters)
    {
        SetFcw(a, DefaultFcw);
        SetFsw(a, 0);
        SetFtw(a, 0);
        a.AsSpan(5, 1 + 2 + 8 + 8).Clear(); // reserved byte, FOP, FIP, FDP
        if (clearRegisters)
            a.AsSpan(StOffset, 128).Clear();
    }

    /// <summary>The x87 state component's bytes in the legacy region: 0..23 and the registers at 32..159.</summary>
    public static readonly (int Offset, int Length)[] X87Ranges = [(0, 24), (StOffset, 128)];

    public static int XmmBytes(int bitness) => (bitness == 64 ? 16 : 8) * 16;
}
