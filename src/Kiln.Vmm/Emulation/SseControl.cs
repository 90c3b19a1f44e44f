using System.Buffers.Binary;
using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>LDMXCSR/STMXCSR and FXSAVE/FXRSTOR (and their REX.W forms) on the XSAVE image's legacy region.
/// The 32-bit forms store FIP/FDP as 32-bit offsets with zero FCS/FDS; the 64-bit forms as 64-bit values.
/// FXSAVE writes bytes 0..415 in 64-bit mode (XMM0-15) and 0..287 otherwise, never the reserved/available tail.</summary>
internal static class SseControl
{
    public static bool Handles(Code code) => code is Code.Ldmxcsr_m32 or Code.Stmxcsr_m32
        or Code.Fxsave_m512byte or Code.Fxsave64_m512byte or Code.Fxrstor_m512byte or Code.Fxrstor64_m512byte;

    public static void Execute(EmulationContext context)
    {
        var code = context.Instruction.Code;
        ulong address = OperandAddressing.LinearAddress(context);
        var x = context.Xsave;
        switch (code)
        {
            case Code.Ldmxcsr_m32:
            {
                CheckSse(context);
                uint value = BitConverter.ToUInt32(context.Memory.Read(address, 4));
                CheckMxcsr(x, value);
                XsaveArea.SetMxcsr(x, value);
                XsaveArea.MarkInUse(x, XsaveArea.Sse);
                context.MarkXsaveDirty();
                break;
            }
            case Code.Stmxcsr_m32:
                CheckSse(context);
                context.Memory.Write(address, BitConverter.GetBytes(XsaveArea.GetMxcsr(x)));
                break;
            case Code.Fxsave_m512byte or Code.Fxsave64_m512byte:
                X87Control.CheckAvailable(context);
                CheckAligned(address, 16);
                context.Memory.Write(address, LegacyImage(x, context.Bitness, code == Code.Fxsave64_m512byte));
                break;
            case Code.Fxrstor_m512byte or Code.Fxrstor64_m512byte:
            {
                X87Control.CheckAvailable(context);
                CheckAligned(address, 16);
                int length = XsaveArea.XmmOffset + XsaveArea.XmmBytes(context.Bitness);
                var image = context.Memory.Read(address, length);
                uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(XsaveArea.Mxcsr));
                CheckMxcsr(x, mxcsr);
                LoadX87(x, image, code == Code.Fxrstor64_m512byte);
                XsaveArea.SetMxcsr(x, mxcsr);
                image.AsSpan(XsaveArea.XmmOffset).CopyTo(x.AsSpan(XsaveArea.XmmOffset));
                XsaveArea.MarkInUse(x, XsaveArea.X87 | XsaveArea.Sse);
                context.MarkXsaveDirty();
                break;
            }
        }
        context.AdvanceRip();
    }

    /// <summary>The FXSAVE image of the current state: x87 fields and registers, MXCSR(+mask), XMM registers.</summary>
    public static byte[] LegacyImage(byte[] xsave, int bitness, bool wide)
    {
        var image = xsave.AsSpan(0, XsaveArea.XmmOffset + XsaveArea.XmmBytes(bitness)).ToArray();
        image[5] = 0;
        if (!wide)
        {
            // FIP/FDP as 32-bit offsets; FCS/FDS are not tracked (zero).
            image.AsSpan(XsaveArea.Fip + 4, 4).Clear();
            image.AsSpan(XsaveArea.Fdp + 4, 4).Clear();
        }
        return image;
    }

    /// <summary>Loads the x87 part of a legacy image (bytes 0..23 except MXCSR, registers at 32..159).</summary>
    public static void LoadX87(byte[] xsave, ReadOnlySpan<byte> image, bool wide)
    {
        image[..XsaveArea.Mxcsr].CopyTo(xsave);
        xsave[5] = 0;
        if (!wide)
        {
            xsave.AsSpan(XsaveArea.Fip + 4, 4).Clear();
            xsave.AsSpan(XsaveArea.Fdp + 4, 4).Clear();
        }
        image.Slice(XsaveArea.StOffset, 128).CopyTo(xsave.AsSpan(XsaveArea.StOffset));
    }

    /// <summary>#GP(0) when the new MXCSR sets a bit outside MXCSR_MASK.</summary>
    public static void CheckMxcsr(byte[] xsave, uint value)
    {
        if ((value & ~XsaveArea.MxcsrMaskOf(xsave)) != 0)
            throw EmulationContext.Fault(GuestException.GeneralProtection, 0);
    }

    public static void CheckAligned(ulong address, uint alignment)
    {
        if ((address & (alignment - 1)) != 0)
            throw EmulationContext.Fault(GuestException.GeneralProtection, 0);
    }

    /// <summary>SSE instructions: #UD when CR0.EM is set or CR4.OSFXSR is clear, #NM when CR0.TS is set.</summary>
    private static void CheckSse(EmulationContext context)
    {
        if ((context.Sregs.Cr0 & 4) != 0 || (context.Sregs.Cr4 & (1UL << 9)) == 0)
            throw EmulationContext.Fault(GuestException.InvalidOpcode);
        if ((context.Sregs.Cr0 & 8) != 0)
            throw EmulationContext.Fault(GuestException.DeviceNotAvailable);
    }
}
