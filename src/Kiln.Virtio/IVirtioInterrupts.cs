namespace Kiln.Virtio;

/// <summary>How a transport interrupts the guest; the VMM implements it (see <see cref="Kvm.KvmVirtioInterrupts"/>).
/// Called on device worker threads and on vCPU threads; implementations must be thread-safe and must not block.</summary>
public interface IVirtioInterrupts
{
    /// <summary>Drives the device's wired interrupt (the GSI of a virtio-mmio device, or a PCI function's INTx).
    /// Raised while the interrupt status is non-zero, lowered when the driver acknowledges it. An edge-style
    /// implementation (irqfd) may pulse on <c>true</c> and ignore <c>false</c>.</summary>
    void SetLine(bool asserted);

    /// <summary>Sends one MSI message (a PCI function's unmasked MSI-X vector).</summary>
    void SignalMsi(ulong address, uint data);
}
