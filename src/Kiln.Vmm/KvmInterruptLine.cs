using Kiln.Devices;
using Kiln.Kvm;

namespace Kiln.Vmm;

/// <summary>An ISA IRQ line driven into KVM's in-kernel PIC and IOAPIC.</summary>
public sealed class KvmInterruptLine(VirtualMachine vm, uint irq) : IInterruptLine
{
    public void Set(bool high) => vm.SetIrqLine(irq, high);
}
