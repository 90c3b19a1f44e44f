namespace Kiln.Devices.Legacy;

/// <summary>System Control Port A at port 0x92 (register at <see cref="Port"/>, length <see cref="PortCount"/>):
/// bit 0 is the "fast reset" (a 0→1 transition resets the machine), bit 1 the fast A20 gate. All bits read back as
/// written. KVM does not mask A20, so the gate is only remembered (power-on value: enabled, which is the truth).</summary>
/// <remarks>Bit 0 stays set after it fired, as on the real part, until <see cref="Reset"/> clears it: the machine's
/// reset path must call <see cref="Reset"/> or a second fast reset will not trigger.</remarks>
public sealed class SystemControlPortA(IMachineControl machine) : ByteRegisterPort(A20Gate)
{
    public const ushort Port = 0x92;
    public const ulong PortCount = 1;

    private const byte FastReset = 0x01, A20Gate = 0x02;

    public override string StateId => "port92";

    public bool A20Enabled => (Value & A20Gate) != 0;

    protected override byte OnWrite(byte old, byte written, out bool triggered)
    {
        triggered = (written & FastReset) != 0 && (old & FastReset) == 0;
        return written;
    }

    protected override void OnTriggered() => machine.RequestReset("port 0x92");

    /// <summary>Machine reset: the fast-reset bit clears; the A20 gate keeps its setting.</summary>
    public void Reset() => Update(v => (byte)(v & ~FastReset));
}
