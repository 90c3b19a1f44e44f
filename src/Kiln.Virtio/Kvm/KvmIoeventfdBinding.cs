using Kiln.Devices;
using Kiln.Kvm;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Pci;

namespace Kiln.Virtio.Kvm;

/// <summary>Binds a device's worker eventfd to its notify addresses with KVM ioeventfds, so a guest's queue
/// notification wakes the worker without a VM exit. Follows a PCI function's BAR when the guest moves it.
/// <para>The guest chooses where a BAR goes, so KVM may refuse an address: a BAR moved onto another function's notify
/// address fails KVM_IOEVENTFD with EEXIST (that address already has an ioeventfd). Such an address is left unbound
/// and logged (rate-limited). The ioeventfd already there keeps it: two functions decoding one address is the
/// guest's own conflict, undefined on real hardware too. Once that one moves away, writes to the address exit to
/// the VMM, whose bus dispatch reaches whichever function decodes it (the transport's notify handler kicks the
/// worker), only slower. The VM never stops over it.</para></summary>
public sealed class KvmIoeventfdBinding : IDisposable
{
    private readonly VirtualMachine _vm;
    private readonly VirtioDevice _device;
    private readonly Func<IReadOnlyList<(ulong Address, uint Length)>> _regions;
    private readonly Lock _lock = new();
    private readonly RateLimitedLog _log = new();
    private IReadOnlyList<(ulong Address, uint Length)> _bound = [];
    private readonly VirtioPciTransport? _pci;
    private long _refused;

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

    /// <summary>The notify addresses that have an ioeventfd now.</summary>
    public IReadOnlyList<(ulong Address, uint Length)> Bound
    {
        get
        {
            lock (_lock)
                return _bound;
        }
    }

    /// <summary>Notify addresses KVM refused so far (each is served through VM exits instead).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    private void Rebind()
    {
        lock (_lock)
        {
            Unbind();
            var fd = _device.NotifyEventFd!;
            var bound = new List<(ulong, uint)>();
            foreach (var (address, length) in _regions())
            {
                try
                {
                    _vm.Ioeventfd(fd, address, length, pio: false);
                    bound.Add((address, length));
                }
                catch (KvmException e)
                {
                    Interlocked.Increment(ref _refused);
                    _log.Write($"{_device.Name}: no ioeventfd at notify address 0x{address:x} ({e.Message}); " +
                               "its notifications go through the VMM instead");
                }
            }
            _bound = bound;
        }
    }

    /// <summary>Removes every ioeventfd this binding added (under the lock). A removal KVM refuses means the
    /// ioeventfd is gone already (the VM is being torn down).</summary>
    private void Unbind()
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

    public void Dispose()
    {
        if (_pci is not null)
            _pci.NotifyRegionsChanged -= Rebind;
        lock (_lock)
            Unbind();
    }
}
