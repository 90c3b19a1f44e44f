using Kiln.Devices;
using Kiln.Interop;
using Kiln.Kvm;

namespace Kiln.Virtio.Kvm;

/// <summary>The VMM's <see cref="IVirtioInterrupts"/> on KVM. The wired line is either an irqfd on the GSI (an eventfd
/// write per interrupt, an edge as Firecracker does it for virtio-mmio) or KVM_IRQ_LINE (a true level that follows
/// the interrupt status). MSI messages go through KVM_SIGNAL_MSI.
/// <para>The MSI address and data are whatever the guest wrote into the MSI-X table, so KVM may refuse the message:
/// EINVAL for one it cannot route (an x2APIC-format address once that API is on, or no in-kernel irqchip), -1 (EPERM)
/// when its slow delivery path matched no vCPU. (A physical destination no vCPU has is accepted and dropped by KVM
/// itself.) Like a PCI write that no one claims, a refused message is dropped, counted and logged (rate-limited);
/// the device and the VMM go on. The same holds for a failing line signal, which no guest value reaches but which
/// must not end a device worker either.</para></summary>
public sealed class KvmVirtioInterrupts : IVirtioInterrupts, IDisposable
{
    private readonly VirtualMachine _vm;
    private readonly FileDescriptor? _irqfd;
    private readonly string _owner;
    private readonly RateLimitedLog _log = new();
    private long _dropped;

    private KvmVirtioInterrupts(VirtualMachine vm, uint gsi, FileDescriptor? irqfd, string? owner)
    {
        _vm = vm;
        Gsi = gsi;
        _irqfd = irqfd;
        _owner = owner ?? $"GSI {gsi}";
    }

    public uint Gsi { get; }

    /// <summary>Interrupts KVM refused (guest-programmed MSI messages nobody can receive, failed line signals).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Interrupts through an irqfd bound to <paramref name="gsi"/> (KVM_IRQFD). <paramref name="owner"/>
    /// names the device in log lines.</summary>
    public static KvmVirtioInterrupts WithIrqfd(VirtualMachine vm, uint gsi, string? owner = null)
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
        return new KvmVirtioInterrupts(vm, gsi, fd, owner);
    }

    /// <summary>Interrupts by driving <paramref name="gsi"/>'s level with KVM_IRQ_LINE.</summary>
    public static KvmVirtioInterrupts WithIrqLine(VirtualMachine vm, uint gsi, string? owner = null) => new(vm, gsi, null, owner);

    public void SetLine(bool asserted)
    {
        try
        {
            if (_irqfd is null)
                _vm.SetIrqLine(Gsi, asserted);
            else if (asserted)
                EventFd.Signal(_irqfd);
        }
        catch (Exception e) when (e is KvmException or SystemCallException)
        {
            Drop($"interrupt line GSI {Gsi} not signalled: {e.Message}");
        }
    }

    public void SignalMsi(ulong address, uint data)
    {
        try
        {
            _vm.SignalMsi(address, data);
        }
        catch (KvmException e)
        {
            Drop($"MSI to address 0x{address:x} data 0x{data:x} not delivered ({e.Message}); dropped");
        }
    }

    private void Drop(string what)
    {
        Interlocked.Increment(ref _dropped);
        _log.Write($"{_owner}: {what}");
    }

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
