using Kiln.Interop;
using Kiln.Kvm;

namespace Kiln.Virtio.Kvm;

/// <summary>The VMM's <see cref="IVirtioInterrupts"/> on KVM. The wired line is either an irqfd on the GSI (an eventfd
/// write per interrupt, an edge as Firecracker does it for virtio-mmio) or KVM_IRQ_LINE (a true level that follows
/// the interrupt status). MSI messages go through KVM_SIGNAL_MSI.</summary>
public sealed class KvmVirtioInterrupts : IVirtioInterrupts, IDisposable
{
    private readonly VirtualMachine _vm;
    private readonly FileDescriptor? _irqfd;

    private KvmVirtioInterrupts(VirtualMachine vm, uint gsi, FileDescriptor? irqfd)
    {
        _vm = vm;
        Gsi = gsi;
        _irqfd = irqfd;
    }

    public uint Gsi { get; }

    /// <summary>Interrupts through an irqfd bound to <paramref name="gsi"/> (KVM_IRQFD).</summary>
    public static KvmVirtioInterrupts WithIrqfd(VirtualMachine vm, uint gsi)
    {
        var fd = EventFd.Create(EventFd.EFD_NONBLOCK);
        try
        {
            vm.Irqfd(fd, gsi);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
        return new KvmVirtioInterrupts(vm, gsi, fd);
    }

    /// <summary>Interrupts by driving <paramref name="gsi"/>'s level with KVM_IRQ_LINE.</summary>
    public static KvmVirtioInterrupts WithIrqLine(VirtualMachine vm, uint gsi) => new(vm, gsi, null);

    public void SetLine(bool asserted)
    {
        if (_irqfd is null)
            _vm.SetIrqLine(Gsi, asserted);
        else if (asserted)
            EventFd.Signal(_irqfd);
    }

    public void SignalMsi(ulong address, uint data) => _vm.SignalMsi(address, data);

    public void Dispose()
    {
        if (_irqfd is null)
            return;
        try
        {
            _vm.Irqfd(_irqfd, Gsi, deassign: true);
        }
        catch (KvmException)
        {
            // The VM is going away anyway.
        }
        _irqfd.Dispose();
    }
}
