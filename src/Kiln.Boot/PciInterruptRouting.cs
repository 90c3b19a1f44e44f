namespace Kiln.Boot;

/// <summary>Kiln's fixed wiring of PCI INTx: pin A of the device in slot s (slot 0 is the host bridge) raises IOAPIC
/// GSI 16 + (s - 1) % 8. The VMM wires devices by it and the DSDT's _PRT announces it, so both read it from here.</summary>
public static class PciInterruptRouting
{
    public const uint FirstGsi = 16, GsiCount = 8;

    public static uint GsiForSlot(int slot) => FirstGsi + (uint)(slot - 1) % GsiCount;
}
