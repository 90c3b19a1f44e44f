using System.Buffers.Binary;
using System.Numerics;
using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>XSAVE, XSAVEOPT (saved like XSAVE, which is allowed), XSAVEC and XRSTOR (standard and compacted
/// source), with their REX.W forms. RFBM = XCR0 &amp; EDX:EAX. The vCPU's state comes from KVM's standard-format
/// image; a component missing from that image (beyond its 4 KiB) is not emulated. XSAVES/XRSTORS (supervisor
/// components) are not handled.</summary>
internal static class XsaveInstructions
{
    private const ulong CompactedFormat = 1UL << 63;

    public static bool Handles(Code code) => code is Code.Xsave_mem or Code.Xsave64_mem or Code.Xsaveopt_mem
        or Code.Xsaveopt64_mem or Code.Xsavec_mem or Code.Xsavec64_mem or Code.Xrstor_mem or Code.Xrstor64_mem;

    public static void Execute(EmulationContext context)
    {
        var code = context.Instruction.Code;
        if ((context.Sregs.Cr4 & (1UL << 18)) == 0) // CR4.OSXSAVE
            throw EmulationContext.Fault(GuestException.InvalidOpcode);
        if ((context.Sregs.Cr0 & 8) != 0)
            throw EmulationContext.Fault(GuestException.DeviceNotAvailable);
        ulong address = OperandAddressing.LinearAddress(context);
        SseControl.CheckAligned(address, 64);
        ulong xcr0 = context.Xcr0;
        ulong rfbm = xcr0 & (((context.Regs.Rdx & 0xFFFF_FFFF) << 32) | (context.Regs.Rax & 0xFFFF_FFFF));
        bool wide = code is Code.Xsave64_mem or Code.Xsaveopt64_mem or Code.Xsavec64_mem or Code.Xrstor64_mem;
        switch (code)
        {
            case Code.Xsave_mem or Code.Xsave64_mem or Code.Xsaveopt_mem or Code.Xsaveopt64_mem:
                Save(context, address, rfbm, wide, compacted: false);
                break;
            case Code.Xsavec_mem or Code.Xsavec64_mem:
                Save(context, address, rfbm, wide, compacted: true);
                break;
            default:
                Restore(context, address, rfbm, xcr0, wide);
                break;
        }
        context.AdvanceRip();
    }

    private static void Save(EmulationContext context, ulong address, ulong rfbm, bool wide, bool compacted)
    {
        var current = Normalized(context);
        ulong inUse = XsaveArea.GetXstateBv(current) & rfbm;
        var legacy = SseControl.LegacyImage(current, context.Bitness, wide);
        var memory = context.Memory;
        // In the compacted form, components in their initial state are not written (XSTATE_BV says so).
        ulong written = compacted ? inUse : rfbm;
        if ((written & XsaveArea.X87) != 0)
            foreach (var (offset, length) in XsaveArea.X87Ranges)
                memory.Write(address + (ulong)offset, legacy.AsSpan(offset, length));
        if ((rfbm & (XsaveArea.Sse | XsaveArea.Avx)) != 0)
            memory.Write(address + XsaveArea.Mxcsr, legacy.AsSpan(XsaveArea.Mxcsr, 8));
        if ((written & XsaveArea.Sse) != 0)
            memory.Write(address + XsaveArea.XmmOffset, legacy.AsSpan(XsaveArea.XmmOffset));
        foreach (var (index, component, memoryOffset) in Extended(context, rfbm, compacted ? rfbm : 0))
            if ((written & (1UL << index)) != 0)
                memory.Write(address + (ulong)memoryOffset, current.AsSpan(component.Offset, component.Size));
        var header = new byte[16];
        if (compacted)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(header, inUse);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), rfbm | CompactedFormat);
            memory.Write(address + XsaveArea.HeaderOffset, header);
        }
        else
        {
            ulong old = memory.ReadUInt64(address + XsaveArea.HeaderOffset);
            BinaryPrimitives.WriteUInt64LittleEndian(header, (old & ~rfbm) | inUse);
            memory.Write(address + XsaveArea.HeaderOffset, header.AsSpan(0, 8));
        }
    }

    private static void Restore(EmulationContext context, ulong address, ulong rfbm, ulong xcr0, bool wide)
    {
        var memory = context.Memory;
        var header = memory.Read(address + XsaveArea.HeaderOffset, 64);
        ulong xstate = BinaryPrimitives.ReadUInt64LittleEndian(header);
        ulong xcomp = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8));
        bool compacted = (xcomp & CompactedFormat) != 0;
        if (compacted)
        {
            ulong components = xcomp & ~CompactedFormat;
            if ((components & ~xcr0) != 0 || (xstate & ~components) != 0 || header.AsSpan(16).ContainsAnyExcept((byte)0))
                throw EmulationContext.Fault(GuestException.GeneralProtection, 0);
        }
        else if ((xstate & ~xcr0) != 0 || header.AsSpan(8, 16).ContainsAnyExcept((byte)0))
        {
            throw EmulationContext.Fault(GuestException.GeneralProtection, 0);
        }
        var x = context.Xsave;
        var extended = Extended(context, rfbm, compacted ? xcomp & ~CompactedFormat : 0).ToList();
        // Read and check everything before changing the image, so a fault leaves it as it was.
        byte[]? legacy = (rfbm & (XsaveArea.X87 | XsaveArea.Sse | XsaveArea.Avx)) != 0
            ? memory.Read(address, XsaveArea.XmmOffset + XsaveArea.XmmBytes(context.Bitness)) : null;
        uint? mxcsr = null;
        if ((rfbm & (XsaveArea.Sse | XsaveArea.Avx)) != 0)
        {
            bool fromMemory = !compacted || (xstate & rfbm & (XsaveArea.Sse | XsaveArea.Avx)) != 0;
            mxcsr = fromMemory ? BinaryPrimitives.ReadUInt32LittleEndian(legacy.AsSpan(XsaveArea.Mxcsr)) : XsaveArea.DefaultMxcsr;
            SseControl.CheckMxcsr(x, mxcsr.Value);
        }
        var loaded = extended.Where(e => (xstate & (1UL << e.Index)) != 0)
            .Select(e => (e.Component, Data: memory.Read(address + (ulong)e.MemoryOffset, e.Component.Size))).ToList();

        if ((rfbm & XsaveArea.X87) != 0)
        {
            if ((xstate & XsaveArea.X87) != 0)
                SseControl.LoadX87(x, legacy, wide);
            else
                XsaveArea.InitX87(x, clearRegisters: true);
        }
        if ((rfbm & XsaveArea.Sse) != 0)
        {
            var xmm = x.AsSpan(XsaveArea.XmmOffset, XsaveArea.XmmBytes(context.Bitness));
            if ((xstate & XsaveArea.Sse) != 0)
                legacy.AsSpan(XsaveArea.XmmOffset).CopyTo(xmm);
            else
                xmm.Clear();
        }
        if (mxcsr is uint m)
            XsaveArea.SetMxcsr(x, m);
        foreach (var (index, component, _) in extended)
            if ((xstate & (1UL << index)) == 0)
                x.AsSpan(component.Offset, component.Size).Clear(); // initial state of AVX and later: zeros
        foreach (var (component, data) in loaded)
            data.CopyTo(x.AsSpan(component.Offset));
        // x87 and SSE stay marked in use (their values are explicit, and KVM only applies MXCSR with SSE/AVX set);
        // the others follow the restored XSTATE_BV.
        ulong bv = XsaveArea.GetXstateBv(x);
        ulong rfbmExtended = rfbm & ~(XsaveArea.X87 | XsaveArea.Sse);
        bv = (bv & ~rfbmExtended) | (xstate & rfbmExtended) | (rfbm & (XsaveArea.X87 | XsaveArea.Sse));
        XsaveArea.SetXstateBv(x, bv);
        context.MarkXsaveDirty();
    }

    /// <summary>A copy of the vCPU's image in which every component not in use holds its initial values.</summary>
    private static byte[] Normalized(EmulationContext context)
    {
        var copy = (byte[])context.Xsave.Clone();
        ulong inUse = XsaveArea.GetXstateBv(copy);
        if ((inUse & XsaveArea.X87) == 0)
            XsaveArea.InitX87(copy, clearRegisters: true);
        if ((inUse & XsaveArea.Sse) == 0)
            copy.AsSpan(XsaveArea.XmmOffset, 256).Clear();
        foreach (var (_, component, _) in Extended(context, context.Xcr0 & ~inUse, 0))
            copy.AsSpan(component.Offset, component.Size).Clear();
        return copy;
    }

    /// <summary>Components 2.. in <paramref name="mask"/>: where they are in KVM's image, and where in guest memory
    /// (standard offset, or packed in order of <paramref name="compactedBv"/> when that is non-zero; -1 for a
    /// component the compacted image does not contain).</summary>
    private static IEnumerable<(int Index, XsaveComponent Component, int MemoryOffset)> Extended(
        EmulationContext context, ulong mask, ulong compactedBv)
    {
        int compactOffset = XsaveArea.ExtendedOffset;
        ulong all = (mask | compactedBv) & ~(XsaveArea.X87 | XsaveArea.Sse);
        while (all != 0)
        {
            int index = BitOperations.TrailingZeroCount(all);
            all &= all - 1;
            var component = context.State.GetXsaveComponent(index)
                ?? throw new NotEmulatedException($"XSAVE component {index} is enabled but its layout is unknown");
            if (component.Offset + component.Size > context.Xsave.Length)
                throw new NotEmulatedException($"XSAVE component {index} lies beyond KVM's {context.Xsave.Length}-byte image");
            int memoryOffset = component.Offset;
            if (compactedBv != 0 && (compactedBv & (1UL << index)) == 0)
            {
                memoryOffset = -1;
            }
            else if (compactedBv != 0)
            {
                if (component.Align64)
                    compactOffset = (compactOffset + 63) & ~63;
                memoryOffset = compactOffset;
                compactOffset += component.Size;
            }
            if ((mask & (1UL << index)) != 0)
                yield return (index, component, memoryOffset);
        }
    }
}
