namespace Kiln.Boot.Acpi;

/// <summary>Where Kiln's ACPI tables live and which I/O ports the fixed-hardware power-management block uses.
/// The VMM registers its PM device at <see cref="PmBase"/>; the FADT points the guest there.</summary>
public static class AcpiLayout
{
    /// <summary>RSDP at the start of the BIOS area (Linux scans 0xE0000-0xFFFFF for "RSD PTR "), tables after it.</summary>
    public const ulong RsdpAddress = BootLayout.BiosAreaStart;
    public const ulong TablesEnd = BootLayout.KernelLoadAddress;

    /// <summary>PM1a event block (status + enable, 4 bytes), PM1a control (2 bytes), PM timer (4 bytes).</summary>
    public const ushort PmBase = 0x600;
    public const ushort Pm1aEventOffset = 0, Pm1aControlOffset = 4, PmTimerOffset = 8;
    public const ushort PmLength = 12;

    /// <summary>The SLP_TYP value the DSDT's \_S5 package announces: a PM1a control write with this type and
    /// SLP_EN set is a power-off.</summary>
    public const int SleepTypeS5 = 5;

    public const byte SciIrq = 9;
    public const ushort ResetPort = 0xCF9;
    public const byte ResetValue = 0x06;
}
