using Kiln.Kvm;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Pci;

namespace Kiln.Virtio.Kvm;

/// <summary>Binds a device's worker eventfd to its notify addresses with KVM ioeventfds, so a guest's queue
/// notification wakes the worker without a VM exit. Follows a PCI function's BAR when the guest moves it.</summary>
public sealed class KvmIoeventfdBinding : IDisposable
{
    private readonly VirtualMachine _vm;
    private readonly VirtioDevice _device;
    private readonly Func<IReadOnlyList<(ulong Address, uint Length)>> _regions;
    private readonly Lock _lock = new();
    private IReadOnlyList<(ulong Address, uint Length)> _bound = [];
    private readonly VirtioPciTransport? _pci;

    private KvmIoeventfdBinding(VirtualMachine vm, VirtioDevice device, Func<IReadOnlyList<(ulong, uint)>> regions,
        VirtioPciTransport? pci)
    {
        if (device.NotifyEventFd is null)
            throw new InvalidOperationException($"{device.Name}: start the worker before binding its ioeventfd");
        _vm = vm;
        _device = device;
        _regions = regions;
        _pci = pci;
        Rebind();
        if (pci is not null)
            pci.NotifyRegionsChanged += Rebind;
    }

    /// <summary>One ioeventfd on QueueNotify (4-byte writes, any value).</summary>
    public static KvmIoeventfdBinding Bind(VirtualMachine vm, VirtioMmioTransport transport) =>
        new(vm, transport.Device, () => [(transport.NotifyAddress, 4u)], null);

    /// <summary>One ioeventfd per queue notify address (16-bit writes), re-bound whenever the BAR moves.</summary>
    public static KvmIoeventfdBinding Bind(VirtualMachine vm, VirtioPciTransport transport) =>
        new(vm, transport.Device, () => transport.NotifyRegions, transport);

    private void Rebind()
    {
        lock (_lock)
        {
            var fd = _device.NotifyEventFd!;
            foreach (var (address, length) in _bound)
                _vm.Ioeventfd(fd, address, length, pio: false, deassign: true);
            _bound = [];
            var wanted = _regions();
            foreach (var (address, length) in wanted)
                _vm.Ioeventfd(fd, address, length, pio: false);
            _bound = wanted;
        }
    }

    public void Dispose()
    {
        if (_pci is not null)
            _pci.NotifyRegionsChanged -= Rebind;
        lock (_lock)
        {
            foreach (var (address, length) in _bound)
            {
                try
                {
                    _vm.Ioeventfd(_device.NotifyEventFd!, address, length, pio: false, deassign: true);
                }
                catch (KvmException)
                {
                }
            }
            _bound = [];
        }
    }
}
