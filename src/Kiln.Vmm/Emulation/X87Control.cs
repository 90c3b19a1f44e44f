using Iced.Intel;

namespace Kiln.Vmm.Emulation;

/// <summary>x87 control instructions on the XSAVE image's legacy region: FNCLEX/FCLEX, WAIT/FWAIT, FNINIT/FINIT,
/// FLDCW, FNSTCW/FSTCW, FNSTSW/FSTSW (memory and AX), EMMS. None of them touches FIP/FDP/FOP except FNINIT.
/// Waiting forms (and FLDCW, EMMS) raise #MF first when an unmasked exception is pending (FSW.ES).</summary>
internal static class X87Control
{
    private const ushort StatusExceptionSummary = 0x0080, StatusBusy = 0x8000;

    public static bool Handles(Code code) => code is Code.Fnclex or Code.Fclex or Code.Wait or Code.Fninit or Code.Finit
        or Code.Fldcw_m2byte or Code.Fnstcw_m2byte or Code.Fstcw_m2byte or Code.Fnstsw_m2byte or Code.Fstsw_m2byte
        or Code.Fnstsw_AX or Code.Fstsw_AX or Code.Emms;

    public static void Execute(EmulationContext context)
    {
        var code = context.Instruction.Code;
        if (code == Code.Wait)
        {
            // WAIT: #NM only when CR0.MP and CR0.TS are both set.
            if ((context.Sregs.Cr0 & 0xA) == 0xA)
                throw EmulationContext.Fault(GuestException.DeviceNotAvailable);
            CheckPending(context);
            context.AdvanceRip();
            return;
        }
        CheckAvailable(context);
        bool waits = code is Code.Fclex or Code.Finit or Code.Fstcw_m2byte or Code.Fstsw_m2byte or Code.Fstsw_AX
            or Code.Fldcw_m2byte or Code.Emms;
        if (waits)
            CheckPending(context);
        var x = context.Xsave;
        switch (code)
        {
            case Code.Fnclex or Code.Fclex:
                // Clears the exception flags (PE..IE), SF, ES and B; C0-C3 and TOP stay.
                XsaveArea.SetFsw(x, (ushort)(XsaveArea.GetFsw(x) & 0x7F00));
                break;
            case Code.Fninit or Code.Finit:
                XsaveArea.InitX87(x, clearRegisters: false);
                break;
            case Code.Fldcw_m2byte:
            {
                ushort fcw = BitConverter.ToUInt16(context.Memory.Read(OperandAddressing.LinearAddress(context), 2));
                XsaveArea.SetFcw(x, fcw);
                XsaveArea.SetFsw(x, WithSummary(XsaveArea.GetFsw(x), fcw));
                break;
            }
            case Code.Fnstcw_m2byte or Code.Fstcw_m2byte:
                context.Memory.Write(OperandAddressing.LinearAddress(context), BitConverter.GetBytes(XsaveArea.GetFcw(x)));
                break;
            case Code.Fnstsw_m2byte or Code.Fstsw_m2byte:
                context.Memory.Write(OperandAddressing.LinearAddress(context), BitConverter.GetBytes(XsaveArea.GetFsw(x)));
                break;
            case Code.Fnstsw_AX or Code.Fstsw_AX:
                context.Regs.Rax = (context.Regs.Rax & ~0xFFFFUL) | XsaveArea.GetFsw(x);
                break;
            case Code.Emms:
                XsaveArea.SetFtw(x, 0); // every register empty
                break;
        }
        if (code is not (Code.Fnstcw_m2byte or Code.Fstcw_m2byte or Code.Fnstsw_m2byte or Code.Fstsw_m2byte
            or Code.Fnstsw_AX or Code.Fstsw_AX))
        {
            XsaveArea.MarkInUse(x, XsaveArea.X87);
            context.MarkXsaveDirty();
        }
        context.AdvanceRip();
    }

    /// <summary>FSW.ES and B follow "some exception flag is set whose mask bit in FCW is clear".</summary>
    public static ushort WithSummary(ushort fsw, ushort fcw)
    {
        bool pending = (fsw & ~fcw & 0x3F) != 0;
        return pending ? (ushort)(fsw | StatusExceptionSummary | StatusBusy)
                       : (ushort)(fsw & ~(StatusExceptionSummary | StatusBusy));
    }

    /// <summary>#NM when CR0.EM or CR0.TS is set (x87 instructions other than WAIT).</summary>
    public static void CheckAvailable(EmulationContext context)
    {
        if ((context.Sregs.Cr0 & 0xC) != 0)
            throw EmulationContext.Fault(GuestException.DeviceNotAvailable);
    }

    private static void CheckPending(EmulationContext context)
    {
        if ((XsaveArea.GetFsw(context.Xsave) & StatusExceptionSummary) != 0)
            throw EmulationContext.Fault(GuestException.X87Error);
    }
}
