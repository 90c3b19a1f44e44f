using System.Buffers.Binary;
using Kiln.Devices.Bus;
using Kiln.GuestTests.Support;
using Kiln.Memory;
using Kiln.Virtio.Kvm;
using Kiln.Virtio.Pci;
using Kiln.Virtio.Rng;

namespace Kiln.GuestTests;

/// <summary>The KVM glue a guest steers (MSI messages from its MSI-X table, ioeventfd addresses from its BARs)
/// against the real /dev/kvm: what KVM refuses is dropped and counted, never thrown at a vCPU or device worker.</summary>
public sealed class KvmFaultContainmentTests : IDisposable
{
    private readonly Kvm.Kvm _kvm = Kvm.Kvm.Open();
    private readonly GuestMemory _memory = GuestMemory.Create([(new GuestAddress(0), 1 << 20)]);

    public void Dispose()
    {
        _memory.Dispose();
        _kvm.Dispose();
    }

    [KvmFact]
    public void InterruptsKvmRefusesAreDroppedAndCounted()
    {
        // Without an in-kernel irqchip KVM refuses both KVM_SIGNAL_MSI (EINVAL) and KVM_IRQ_LINE: the same refusals a
        // guest-programmed message can meet, reached here without depending on the host's APIC routing.
        using var vm = _kvm.CreateVm();
        using var interrupts = KvmVirtioInterrupts.WithIrqLine(vm, 10, "test device");
        interrupts.SignalMsi(0xFEE0_F000, 0x31);
        interrupts.SignalMsi(0xFFFF_FFFF_FFFF_FFF0, 0);
        interrupts.SetLine(true);
        Assert.Equal(3, interrupts.Dropped);
    }

    [KvmFact]
    public void MessagesToNoCpuOrWithGarbageDoNotThrow()
    {
        using var vm = _kvm.CreateVm();
        vm.CreateIrqchip();
        using var interrupts = KvmVirtioInterrupts.WithIrqfd(vm, 10, "test device");
        foreach (var (address, data) in new (ulong, uint)[]
                 { (0xFEE0_F000, 0x31), (0xFEEF_F00C, 0x02), (0, 0), (0xFFFF_FFFF_FFFF_FFF0, 0xFFFF_FFFF) })
            interrupts.SignalMsi(address, data);
        interrupts.SetLine(true);
    }

    [KvmFact]
    public void ABarMovedOntoAnothersNotifyAddressKeepsTheVmRunning()
    {
        using var vm = _kvm.CreateVm();
        var pio = new IoBus("port I/O");
        var mmio = new IoBus("MMIO");
        var bridge = new PciHostBridge();
        bridge.RegisterPorts(pio, mmio);
        var irq = new NoInterrupts();
        using var a = new VirtioPciTransport(new VirtioRng(_memory), irq, 10);
        using var b = new VirtioPciTransport(new VirtioRng(_memory), irq, 11);
        bridge.Attach(a);
        bridge.Attach(b);
        a.Device.StartWorker();
        b.Device.StartWorker();
        using var bindA = KvmIoeventfdBinding.Bind(vm, a);
        using var bindB = KvmIoeventfdBinding.Bind(vm, b);
        ConfigWrite(pio, 1, 0x04, 0x6, 2);
        ConfigWrite(pio, 2, 0x04, 0x6, 2);
        ulong barA = a.Config.BarAddress(0), barB = b.Config.BarAddress(0);
        Assert.Single(bindA.Bound);
        Assert.Single(bindB.Bound);

        ConfigWrite(pio, 1, 0x10, (uint)barB, 4); // A onto B: KVM_IOEVENTFD says EEXIST for A's notify address
        Assert.Equal(1, bindA.Refused);
        Assert.Equal(0, pio.DeviceFaults); // refused, not faulted: nothing reached the bus's fault path
        Assert.Empty(bindA.Bound);
        Assert.Equal(barB + 0x3000, bindB.Bound.Single().Address);

        ConfigWrite(pio, 1, 0x10, 0x0300_0000, 4); // onto RAM (outside the window: not decoded, nothing bound)
        Assert.Empty(bindA.Bound);
        ConfigWrite(pio, 1, 0x10, (uint)barA, 4); // and back
        Assert.Equal(barA + 0x3000, bindA.Bound.Single().Address);
        Assert.Equal(1, bindA.Refused);
    }

    private static void ConfigWrite(IoBus pio, int slot, int offset, uint value, int width)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        pio.Write(0xCF8, b);
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        pio.Write(0xCFC + (ulong)(offset & 3), b[..width]);
    }

    private sealed class NoInterrupts : Virtio.IVirtioInterrupts
    {
        public void SetLine(bool asserted)
        {
        }

        public void SignalMsi(ulong address, uint data)
        {
        }
    }
}
