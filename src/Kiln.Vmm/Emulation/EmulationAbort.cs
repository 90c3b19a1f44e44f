namespace Kiln.Vmm.Emulation;

/// <summary>The instruction raises <see cref="Exception"/> in the guest instead of completing: nothing it would
/// have changed is committed, only the exception is injected (a fault: RIP stays on the instruction).</summary>
internal sealed class GuestFaultException(GuestException exception) : Exception(exception.ToString())
{
    public GuestException Exception { get; } = exception;
}

/// <summary>The fallback cannot complete the instruction; the vCPU is left unchanged and the VMM reports why.</summary>
internal sealed class NotEmulatedException(string reason) : Exception(reason);
