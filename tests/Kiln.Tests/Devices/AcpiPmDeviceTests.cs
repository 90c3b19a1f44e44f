using Kiln.Devices.Legacy;
using Kiln.Devices.State;

namespace Kiln.Tests.Devices;

public sealed class AcpiPmDeviceTests
{
    private static ushort Read16(AcpiPmDevice d, ulong offset)
    {
        var b = new byte[2];
        d.Read(offset, b);
        return BitConverter.ToUInt16(b);
    }

    [Fact]
    public void S5WithSleepEnablePowersOffOnce()
    {
        var m = new FakeMachineControl();
        var d = new AcpiPmDevice(m, 5);
        d.Write(4, BitConverter.GetBytes((ushort)((5 << 10) | (1 << 13))));
        Assert.Single(m.PowerOffs);
        Assert.Equal(0, Read16(d, 4) & (1 << 13)); // SLP_EN reads back clear
    }

    [Fact]
    public void OtherSleepTypesOrNoSleepEnableDoNothing()
    {
        var m = new FakeMachineControl();
        var d = new AcpiPmDevice(m, 5);
        d.Write(4, BitConverter.GetBytes((ushort)(3 << 10 | 1 << 13)));
        d.Write(4, BitConverter.GetBytes((ushort)(5 << 10)));
        Assert.Empty(m.PowerOffs);
        Assert.Equal(1, Read16(d, 4) & 1); // SCI_EN: always in ACPI mode
    }

    [Fact]
    public void TimerCountsUp()
    {
        var d = new AcpiPmDevice(new FakeMachineControl(), 5);
        var a = new byte[4];
        var b = new byte[4];
        d.Read(8, a);
        Thread.Sleep(20);
        d.Read(8, b);
        long delta = BitConverter.ToUInt32(b) - (long)BitConverter.ToUInt32(a);
        Assert.InRange(delta, 20 * AcpiPmDevice.TimerHz / 1000 / 2, 2 * AcpiPmDevice.TimerHz); // about 71,600 ticks
    }

    [Fact]
    public void BadAccessesAreCountedNotThrown()
    {
        var d = new AcpiPmDevice(new FakeMachineControl(), 5);
        var three = new byte[3];
        d.Read(0, three);
        d.Read(11, new byte[4]);
        d.Write(100, new byte[2]);
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF }, three);
        Assert.Equal(3, d.UnexpectedAccesses);
    }

    [Fact]
    public void StateRoundTrips()
    {
        var a = new AcpiPmDevice(new FakeMachineControl(), 5);
        a.Write(2, BitConverter.GetBytes((ushort)0x0121));
        var w = new StateWriter();
        a.SaveState(w);
        var b = new AcpiPmDevice(new FakeMachineControl(), 5);
        b.RestoreState(new StateReader(w.ToArray()));
        Assert.Equal((ushort)0x0121, Read16(b, 2));
        Assert.Throws<StateFormatException>(() => b.RestoreState(new StateReader(new byte[] { 9 })));
    }

    [Fact]
    public void PowerButtonRaisesTheSciOnlyWhenEnabledUntilTheGuestClearsIt()
    {
        var sci = new FakeInterruptLine();
        var d = new AcpiPmDevice(new FakeMachineControl(), 5, sci);
        Assert.False(d.PowerButtonEnabled);
        Assert.False(d.PressPowerButton()); // nobody listening: latched, no interrupt
        Assert.Equal(AcpiPmDevice.PowerButton, Read16(d, 0) & AcpiPmDevice.PowerButton);
        Assert.False(sci.Level);
        d.Write(0, BitConverter.GetBytes(AcpiPmDevice.PowerButton)); // write one to clear
        Assert.Equal(0, Read16(d, 0));

        d.Write(2, BitConverter.GetBytes(AcpiPmDevice.PowerButton)); // the OS's button driver loads
        Assert.True(d.PowerButtonEnabled);
        Assert.False(sci.Level);
        Assert.True(d.PressPowerButton());
        Assert.True(sci.Level); // level-triggered: held until handled
        Assert.True(d.PressPowerButton());
        d.Write(0, BitConverter.GetBytes((ushort)0)); // writing zero clears nothing
        Assert.True(sci.Level);
        d.Write(0, BitConverter.GetBytes(AcpiPmDevice.PowerButton));
        Assert.False(sci.Level);
        Assert.Equal(0, Read16(d, 0));
        Assert.Equal(0, sci.RepeatedLevels);
    }

    [Fact]
    public void DisablingThePowerButtonDropsAPendingSci()
    {
        var sci = new FakeInterruptLine();
        var d = new AcpiPmDevice(new FakeMachineControl(), 5, sci);
        d.Write(2, BitConverter.GetBytes(AcpiPmDevice.PowerButton));
        d.PressPowerButton();
        Assert.True(sci.Level);
        d.Write(2, BitConverter.GetBytes((ushort)0));
        Assert.False(sci.Level);
        Assert.Equal(AcpiPmDevice.PowerButton, Read16(d, 0)); // the press stays latched in the status
    }

    [Fact]
    public void APendingPressSurvivesSaveAndRestoreWithItsSci()
    {
        var a = new AcpiPmDevice(new FakeMachineControl(), 5, new FakeInterruptLine());
        a.Write(2, BitConverter.GetBytes(AcpiPmDevice.PowerButton));
        a.PressPowerButton();
        var w = new StateWriter();
        a.SaveState(w);
        var sci = new FakeInterruptLine();
        var b = new AcpiPmDevice(new FakeMachineControl(), 5, sci);
        b.RestoreState(new StateReader(w.ToArray()));
        Assert.True(sci.Level);
        Assert.Equal(AcpiPmDevice.PowerButton, Read16(b, 0));
    }
}
