using Kiln.Boot;
using Kiln.Contracts.Spec;
using Kiln.Devices.Bus;
using Kiln.Devices.State;
using Kiln.Kvm;
using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Kvm;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Pci;

namespace Kiln.Vmm;

/// <summary>Puts virtio devices on the machine's buses with one transport kind: virtio-mmio windows announced on
/// the kernel command line, or functions behind a PCI host bridge. Each device gets an irqfd-backed interrupt, a
/// KVM ioeventfd for its queue notifications (so kicks never exit to userspace) and a worker thread.</summary>
internal sealed class VirtioWiring : IDisposable
{
    // virtio-mmio: 0x200-byte windows, 4 KiB apart, above the RAM hole's start and below the PCI window.
    private const ulong MmioBase = 0xD000_0000, MmioStride = 0x1000;

    // ISA IRQs no legacy device uses (3 = COM2 kept free, 4 = COM1, 8 = RTC, 9 = ACPI SCI); edge-triggered pins
    // in the MP table and the MADT, which suits irqfd pulses.
    private static readonly uint[] MmioGsis = [5, 6, 7, 10, 11, 12, 13, 14, 15];

    // PCI INTx fallback lines on the IOAPIC's PCI pins; guests use MSI-X when they can.

    private readonly VirtualMachine _vm;
    private readonly IoBus _pio, _mmio;
    private readonly VirtioTransport _kind;
    private readonly Action<IStateful> _addState;
    private readonly List<IDisposable> _owned = [];
    private readonly List<VirtioDevice> _devices = [];
    private readonly List<string> _commandLine = [];
    private PciHostBridge? _bridge;

    public VirtioWiring(VirtualMachine vm, IoBus pio, IoBus mmio, VirtioTransport kind, Action<IStateful> addState)
    {
        _vm = vm;
        _pio = pio;
        _mmio = mmio;
        _kind = kind;
        _addState = addState;
        if (kind == VirtioTransport.Pci)
        {
            // The bridge is there even with no devices: guests probe PCI and should find a host bridge.
            _bridge = new PciHostBridge();
            _bridge.RegisterPorts(pio, mmio);
            addState(_bridge);
        }
    }

    /// <summary>Kernel command-line entries the guest needs to find the devices (virtio-mmio only).</summary>
    public string CommandLine => string.Join(' ', _commandLine);

    public IReadOnlyList<VirtioDevice> Devices => _devices;

    public void Add(VirtioDevice device, string name)
    {
        int index = _devices.Count;
        device.StartWorker(); // before the ioeventfd binding, which hands KVM the worker's eventfd
        KvmVirtioInterrupts interrupts;
        IStateful state;
        if (_kind == VirtioTransport.Mmio)
        {
            if (index >= MmioGsis.Length)
                throw new VmSpecException("machine.transport", $"virtio-mmio has room for {MmioGsis.Length} devices; {name} would be one more");
            uint gsi = MmioGsis[index];
            interrupts = KvmVirtioInterrupts.WithIrqfd(_vm, gsi, name);
            var transport = new VirtioMmioTransport(device, interrupts, MmioBase + (ulong)index * MmioStride, gsi);
            _mmio.Register(transport.BaseAddress, VirtioMmioTransport.WindowSize, transport, $"virtio-mmio {name}");
            _owned.Add(transport);
            _owned.Add(KvmIoeventfdBinding.Bind(_vm, transport));
            _commandLine.Add(transport.KernelCommandLineArgument);
            state = transport;
        }
        else
        {
            int slot = index + 1; // slot 0 is the host bridge; devices take the next slots in order
            uint gsi = PciInterruptRouting.GsiForSlot(slot);
            interrupts = KvmVirtioInterrupts.WithIrqfd(_vm, gsi, name);
            var transport = new VirtioPciTransport(device, interrupts, gsi);
            int attached;
            try
            {
                attached = _bridge!.Attach(transport);
            }
            catch (InvalidOperationException e)
            {
                transport.Dispose();
                throw new VmSpecException("machine.transport", $"{name}: {e.Message}");
            }
            if (attached != slot)
                throw new InvalidOperationException($"{name} landed in another PCI slot than {slot}, so its INTx GSI would not match the DSDT");
            _owned.Add(transport);
            _owned.Add(KvmIoeventfdBinding.Bind(_vm, transport));
            state = transport;
        }
        _owned.Add(interrupts);
        _addState(state);
        _devices.Add(device);
    }

    /// <summary>Stops the devices' workers touching guest memory (before RAM and state are captured).</summary>
    public void Pause() => _devices.ForEach(d => d.Pause());

    public void Resume() => _devices.ForEach(d => d.Resume());

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
    }
}
