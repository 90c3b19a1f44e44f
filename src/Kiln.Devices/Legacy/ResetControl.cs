namespace Kiln.Devices.Legacy;

/// <summary>The chipset's Reset Control Register at port 0xCF9 (register at <see cref="Port"/>, length
/// <see cref="PortCount"/>). Writing bit 2 (RST_CPU) resets the machine; bit 1 (SYS_RST) selects a hard rather than a
/// soft reset and bit 3 (FULL_RST) a full one. Under KVM every reset is a full machine reset, so those two bits are
/// only remembered and read back. This is the path Linux takes with <c>reboot=pci</c> (and as a fallback).</summary>
/// <remarks>0xCF9 lies inside the PCI configuration-mechanism range 0xCF8-0xCFF. If a PCI host bridge is later
/// registered there, it must forward single-byte accesses to 0xCF9 here, since the bus does not allow overlaps.</remarks>
public sealed class ResetControl(IMachineControl machine) : ByteRegisterPort(0)
{
    public const ushort Port = 0xCF9;
    public const ulong PortCount = 1;

    private const byte SystemReset = 0x02, ResetCpu = 0x04, FullReset = 0x08;
    private const byte KeptBits = SystemReset | FullReset; // RST_CPU is an action, not a setting

    public override string StateId => "reset-control@cf9";

    protected override byte OnWrite(byte old, byte written, out bool triggered)
    {
        triggered = (written & ResetCpu) != 0;
        return (byte)(written & KeptBits);
    }

    protected override void OnTriggered() => machine.RequestReset("port 0xcf9");

    protected override bool IsValidValue(byte value) => (value & ~KeptBits) == 0;

    /// <summary>Power-on state (machine reset).</summary>
    public void Reset() => Update(_ => 0);
}
