using Kiln.Devices.Bus;
using Kiln.Devices.Legacy;

namespace Kiln.Tests.Devices;

/// <summary>The bus is where guest accesses enter device code: a handler that throws must cost the guest its access,
/// never the vCPU thread (an unhandled exception there aborts the VMM).</summary>
public sealed class IoBusFaultTests
{
    private sealed class ThrowingDevice(bool handlerThrows = false) : IBusDevice, IAccessFaultHandler
    {
        public List<(ulong Offset, string Type)> Faults { get; } = [];

        public void Read(ulong offset, Span<byte> data) => throw new ArgumentOutOfRangeException(nameof(offset));

        public void Write(ulong offset, ReadOnlySpan<byte> data) => throw new InvalidOperationException("broken");

        public void OnAccessFault(ulong offset, Exception fault)
        {
            Faults.Add((offset, fault.GetType().Name));
            if (handlerThrows)
                throw new InvalidOperationException("the fault handler is broken too");
        }
    }

    [Fact]
    public void AFaultingDeviceLosesTheAccessNotTheVcpu()
    {
        var bus = new IoBus("port I/O");
        var device = new ThrowingDevice();
        bus.Register(0x600, 12, device, "broken");
        var data = new byte[] { 1, 2, 3, 4 };
        Assert.True(bus.Read(0x607, data));
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, data);
        Assert.True(bus.Write(0x605, data.AsSpan(0, 1)));
        Assert.Equal(2, bus.DeviceFaults);
        Assert.Equal([(7UL, "ArgumentOutOfRangeException"), (5UL, "InvalidOperationException")], device.Faults);
        Assert.Equal(0, bus.UnhandledReads + bus.UnhandledWrites); // the device claimed them
    }

    [Fact]
    public void AFaultHandlerThatThrowsIsContainedToo()
    {
        var bus = new IoBus("MMIO");
        bus.Register(0xD000_0000, 0x200, new ThrowingDevice(handlerThrows: true), "broken");
        bus.Write(0xD000_0070, new byte[4]);
        Assert.Equal(1, bus.DeviceFaults);
    }

    [Fact]
    public void AcpiPmReservedBytesTakeEveryWidth()
    {
        // The reported abort: a 1-byte write at PM block offset 7 (port 0x607). Every offset and width, and the
        // control register must keep what the guest wrote there, not what a reserved write carried.
        var machine = new FakeMachineControl();
        var pm = new AcpiPmDevice(machine, 5);
        foreach (int width in new[] { 1, 2, 4, 8 })
            for (ulong offset = 0; offset < AcpiPmDevice.Length + 2; offset++)
            {
                var data = new byte[width];
                pm.Read(offset, data);
                if (offset is not (4 or 5) && !(offset < 4 && offset + (ulong)width > 4))
                {
                    Array.Fill(data, (byte)0xFF);
                    pm.Write(offset, data);
                }
            }
        Assert.Empty(machine.PowerOffs);
        var control = new byte[2];
        pm.Read(4, control);
        Assert.Equal(1, control[0] & 1); // SCI_EN, untouched by the writes at 6 and 7
        Assert.Equal(0, control[1]);
    }
}
