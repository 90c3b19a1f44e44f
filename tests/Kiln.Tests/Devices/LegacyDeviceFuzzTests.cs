using Kiln.Devices.Bus;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using static Kiln.Tests.Devices.Port;

namespace Kiln.Tests.Devices;

/// <summary>Whatever a guest does to a port, a device must not throw, must keep its state saveable, and must only
/// ever drive interrupt-line changes.</summary>
public sealed class LegacyDeviceFuzzTests
{
    private const int Operations = 100_000;
    private static readonly int[] Sizes = [1, 1, 1, 1, 2, 4, 0, 3, 8];

    private static void Fuzz(int seed, ulong length, IBusDevice[] ports, Action<Random>? extra = null)
    {
        var random = new Random(seed);
        var buffer = new byte[8];
        for (int i = 0; i < Operations; i++)
        {
            var port = ports[random.Next(ports.Length)];
            // Mostly in range, sometimes just past it or wildly out.
            ulong offset = random.Next(10) switch
            {
                0 => (ulong)random.NextInt64(),
                1 => length + (ulong)random.Next(4),
                _ => (ulong)random.Next((int)length),
            };
            var data = buffer.AsSpan(0, Sizes[random.Next(Sizes.Length)]);
            int action = random.Next(100);
            if (action < 45)
                port.Read(offset, data);
            else if (action < 95)
            {
                random.NextBytes(data);
                port.Write(offset, data);
            }
            else
                extra?.Invoke(random);
        }
    }

    private static void AssertStateRoundTrips(IStateful device, IStateful fresh)
    {
        byte[] blob = Save(device);
        Restore(fresh, blob);
        Assert.Equal(blob, Save(fresh));
    }

    [Fact]
    public void Serial()
    {
        var irq = new FakeInterruptLine();
        var uart = new Serial8250(Serial8250.Com1Base, irq, new FakeSerialOutput());
        var input = new byte[80];
        Fuzz(1, Serial8250.PortCount, [uart], random =>
        {
            random.NextBytes(input);
            uart.EnqueueInput(input.AsSpan(0, random.Next(input.Length)));
            if (random.Next(50) == 0)
                AssertStateRoundTrips(uart, new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), null));
        });
        Assert.Equal(0, irq.RepeatedLevels);
        Assert.True(uart.UnexpectedAccesses > 0);
        AssertStateRoundTrips(uart, new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), null));
    }

    [Fact]
    public void Rtc()
    {
        var now = new DateTime(2024, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var rtc = new CmosRtc(6UL << 30, () => now);
        Fuzz(2, CmosRtc.PortCount, [rtc], random =>
        {
            now = random.Next(20) == 0
                ? new DateTime(random.NextInt64(DateTime.MaxValue.Ticks), DateTimeKind.Utc)
                : now.AddMilliseconds(random.Next(2000));
            _ = rtc.GuestTime;
        });
        AssertStateRoundTrips(rtc, new CmosRtc(0, () => now));
    }

    [Fact]
    public void RtcWithFocusedRegisterWrites()
    {
        // Random ports rarely select a time register and then write it; aim the index at them on purpose,
        // in every B mode (binary/BCD, 12/24h, SET) with arbitrary values.
        var now = new DateTime(2024, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var rtc = new CmosRtc(512UL << 20, () => now);
        var random = new Random(3);
        byte[] registers = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x32];
        for (int i = 0; i < Operations; i++)
        {
            Out(rtc, 0, registers[random.Next(registers.Length)]);
            if (random.Next(2) == 0)
                Out(rtc, 1, (byte)random.Next(256));
            else
                In(rtc, 1);
            now = now.AddSeconds(random.Next(3));
        }
        AssertStateRoundTrips(rtc, new CmosRtc(0, () => now));
    }

    [Fact]
    public void Keyboard()
    {
        var irq = new FakeInterruptLine();
        var machine = new FakeMachineControl();
        var kbc = new I8042(irq, machine);
        Fuzz(4, I8042.PortLength, [kbc.DataPort, kbc.CommandPort], random =>
        {
            kbc.InjectCtrlAltDel();
            if (random.Next(50) == 0)
                kbc.Reset();
        });
        Assert.Equal(0, irq.RepeatedLevels);
        Assert.NotEmpty(machine.Resets);
        AssertStateRoundTrips(kbc, new I8042(new FakeInterruptLine(), machine));
    }

    [Fact]
    public void PlatformPorts()
    {
        var machine = new FakeMachineControl();
        var exit = new DebugExit(machine);
        var rcr = new ResetControl(machine);
        var port92 = new SystemControlPortA(machine);
        var post = new PostCode();
        Fuzz(5, DebugExit.PortCount, [exit]);
        Fuzz(6, ResetControl.PortCount, [rcr]);
        Fuzz(7, SystemControlPortA.PortCount, [port92]);
        Fuzz(8, PostCode.PortCount, [post]);
        Assert.NotEmpty(machine.Exits);
        AssertStateRoundTrips(exit, new DebugExit(machine));
        AssertStateRoundTrips(rcr, new ResetControl(machine));
        AssertStateRoundTrips(port92, new SystemControlPortA(machine));
        AssertStateRoundTrips(post, new PostCode());
    }

    [Fact]
    public void AcpiPm()
    {
        var machine = new FakeMachineControl();
        var sci = new FakeInterruptLine();
        var pm = new AcpiPmDevice(machine, 5, sci);
        Fuzz(10, AcpiPmDevice.Length, [pm], random =>
        {
            if (random.Next(2) == 0)
                pm.PressPowerButton();
        });
        Assert.Equal(0, sci.RepeatedLevels);
        Assert.True(pm.UnexpectedAccesses > 0);
        AssertStateRoundTrips(pm, new AcpiPmDevice(machine, 5, new FakeInterruptLine()));
    }

    [Fact]
    public void AllDevicesOnOneBus()
    {
        // The registration the VMM will do: every range must fit without overlaps.
        var machine = new FakeMachineControl();
        var kbc = new I8042(new FakeInterruptLine(), machine);
        var bus = new IoBus("pio");
        bus.Register(Serial8250.Com1Base, Serial8250.PortCount,
            new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), null), "serial");
        bus.Register(CmosRtc.BasePort, CmosRtc.PortCount, new CmosRtc(512UL << 20), "rtc");
        bus.Register(I8042.DataPortAddress, I8042.PortLength, kbc.DataPort, "i8042-data");
        bus.Register(I8042.CommandPortAddress, I8042.PortLength, kbc.CommandPort, "i8042-cmd");
        bus.Register(DebugExit.DefaultPort, DebugExit.PortCount, new DebugExit(machine), "debug-exit");
        bus.Register(ResetControl.Port, ResetControl.PortCount, new ResetControl(machine), "cf9");
        bus.Register(SystemControlPortA.Port, SystemControlPortA.PortCount, new SystemControlPortA(machine), "port92");
        bus.Register(PostCode.Port, PostCode.PortCount, new PostCode(), "post");
        bus.Register(0x600, AcpiPmDevice.Length, new AcpiPmDevice(machine, 5, new FakeInterruptLine()), "acpi-pm");

        var random = new Random(9);
        var buffer = new byte[4];
        for (int i = 0; i < Operations; i++)
        {
            ulong port = (ulong)random.Next(0x1000);
            var data = buffer.AsSpan(0, 1 << random.Next(3));
            if (random.Next(2) == 0)
                bus.Read(port, data);
            else
            {
                random.NextBytes(data);
                bus.Write(port, data);
            }
        }
        Assert.True(bus.UnhandledReads > 0);
        Assert.Equal(0, bus.DeviceFaults); // every device handled every access itself
    }
}
