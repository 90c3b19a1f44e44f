namespace Kiln.Devices;

/// <summary>A device's interrupt output (an ISA IRQ line into the in-kernel PIC/IOAPIC, or a test double).</summary>
public interface IInterruptLine
{
    void Set(bool high);
}
