using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using static Kiln.Tests.Devices.Port;

namespace Kiln.Tests.Devices;

public sealed class I8042Tests
{
    private readonly FakeInterruptLine _irq = new();
    private readonly FakeMachineControl _machine = new();
    private readonly I8042 _kbc;

    public I8042Tests() => _kbc = new I8042(_irq, _machine);

    private byte Status => In(_kbc.CommandPort, 0);
    private byte Data() => In(_kbc.DataPort, 0);
    private void Command(byte c) => Out(_kbc.CommandPort, 0, c);
    private void Send(byte d) => Out(_kbc.DataPort, 0, d);

    private List<byte> Drain()
    {
        var bytes = new List<byte>();
        while ((Status & 0x01) != 0)
            bytes.Add(Data());
        return bytes;
    }

    [Fact]
    public void SelfTestAnswers55AndSetsSystemFlag()
    {
        Assert.Equal(0x00, Status & 0x05);
        Command(0xAA);
        Assert.Equal(0x01, Status & 0x01);
        Assert.Equal(0x04, Status & 0x04);
        Assert.Equal(0x08, Status & 0x08); // last write was a command
        Assert.Equal(0x55, Data());
        Assert.Equal(0x00, Status & 0x01);
        Assert.Equal(0x04, Status & 0x04);
    }

    [Fact]
    public void InterfaceTestAnswersZero()
    {
        Command(0xAB);
        Assert.Equal([0x00], Drain());
    }

    [Fact]
    public void ResetCommandRequestsResetExactlyOnce()
    {
        Command(0xFE);
        Assert.Equal(["i8042 reset"], _machine.Resets);
        Command(0x20);
        Drain();
        Command(0xFF); // pulses no line (bit 0 set)
        Assert.Single(_machine.Resets);
    }

    [Fact]
    public void OutputPortBitZeroClearResets()
    {
        Command(0xD0);
        byte outputPort = Drain().Single();
        Assert.Equal(0x03, outputPort & 0x03); // reset inactive, A20 on
        Command(0xD1);
        Send(0x03);
        Assert.Empty(_machine.Resets);
        Command(0xD1);
        Send(0x02);
        Assert.Equal(["i8042 reset"], _machine.Resets);
    }

    [Fact]
    public void CommandByteRoundTrips()
    {
        Command(0x20);
        Assert.Equal([0x61], Drain()); // default: keyboard IRQ, aux disabled, translation
        Command(0x60);
        Send(0x47);
        Assert.Equal(0x00, Status & 0x08); // last write was data
        Command(0x20);
        Assert.Equal([0x47], Drain());
        Assert.Equal(0x04, Status & 0x04); // command byte bit 2 is the system flag

        Command(0xAD);
        Command(0xA8);
        Command(0x20);
        Assert.Equal([0x57 & ~0x20], Drain());
        Command(0xAE);
        Command(0xA7);
        Command(0x20);
        Assert.Equal([0x67], Drain());
    }

    [Fact]
    public void KeyboardCommandsAreAcknowledged()
    {
        Send(0xFF);
        Assert.Equal([0xFA, 0xAA], Drain());
        Send(0xF2);
        Assert.Equal([0xFA, 0xAB, 0x83], Drain());
        Send(0xF5);
        Assert.Equal([0xFA], Drain());
        Send(0xF4);
        Assert.Equal([0xFA], Drain());
        Send(0xED);
        Send(0x02);
        Assert.Equal([0xFA, 0xFA], Drain());
        Assert.Equal(0x02, _kbc.Leds);
        Send(0xF0);
        Send(0x00);
        Assert.Equal([0xFA, 0xFA, 0x02], Drain());
        Send(0xEE);
        Assert.Equal([0xEE], Drain());
        Send(0x12);
        Assert.Equal([0xFA], Drain());
    }

    [Fact]
    public void EachQueuedByteGetsItsOwnInterruptEdge()
    {
        Send(0xFF);
        Assert.True(_irq.Level);
        Assert.Equal(0xFA, Data());
        Assert.True(_irq.Level);
        Assert.Equal(0xAA, Data());
        Assert.False(_irq.Level);
        Assert.Equal([true, false, true, false], _irq.Calls);
        Assert.Equal(0, _irq.RepeatedLevels);
        Assert.Equal(0xAA, Data()); // an empty buffer still returns its last byte
    }

    [Fact]
    public void InterruptFollowsCommandByte()
    {
        Command(0x60);
        Send(0x60); // keyboard interrupt off
        Send(0xF4);
        Assert.False(_irq.Level);
        Assert.Equal(0x01, Status & 0x01);
        Command(0x60);
        Send(0x61);
        Assert.True(_irq.Level);
        Assert.Equal([0xFA], Drain());
        Assert.False(_irq.Level);
    }

    [Fact]
    public void KeyboardBytesWaitWhileInterfaceDisabled()
    {
        Command(0xAD);
        Assert.True(_kbc.InjectCtrlAltDel());
        Assert.Equal(0x00, Status & 0x01);
        Command(0x20); // controller replies still flow
        Assert.Equal([0x71], Drain());
        Command(0xAE);
        Assert.Equal([0x1D, 0x38, 0x53, 0xD3, 0xB8, 0x9D], Drain());
    }

    [Fact]
    public void CtrlAltDelInjection()
    {
        Assert.True(_kbc.InjectCtrlAltDel());
        Assert.True(_irq.Level);
        Assert.Equal([0x1D, 0x38, 0x53, 0xD3, 0xB8, 0x9D], Drain());

        Send(0xF5); // scanning off: refused
        Drain();
        Assert.False(_kbc.InjectCtrlAltDel());
        Send(0xF4);
        Drain();

        // Untranslated set 2.
        Command(0x60);
        Send(0x21);
        Assert.True(_kbc.InjectCtrlAltDel());
        Assert.Equal([0x14, 0x11, 0x71, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14], Drain());
    }

    [Fact]
    public void NoAuxPortProbesFailFast()
    {
        Command(0xD3);
        Send(0x5A);
        Assert.Equal(0x00, Status & 0x20); // answered, but not as aux data
        Assert.Equal([0x5A], Drain());
        Command(0xA9);
        Assert.Equal([0x02], Drain());
    }

    [Fact]
    public void StateRoundTrip()
    {
        Command(0x60);
        Send(0x45);
        Send(0xED);
        Send(0x04);
        Send(0xF2); // leaves FA FA FA AB 83, the first in the buffer
        Command(0xD1); // pending parameter survives too
        byte[] blob = Save(_kbc);

        var irq2 = new FakeInterruptLine();
        var copy = new I8042(irq2, new FakeMachineControl());
        Restore(copy, blob);
        Assert.Equal(blob, Save(copy));
        Assert.True(irq2.Level);
        Assert.Equal(In(_kbc.CommandPort, 0), In(copy.CommandPort, 0));
        var original = Drain();
        var restored = new List<byte>();
        while ((In(copy.CommandPort, 0) & 1) != 0)
            restored.Add(In(copy.DataPort, 0));
        Assert.Equal(original, restored);
        Assert.Equal(0x04, copy.Leds);
    }

    [Fact]
    public void RestoreRefusesBadState()
    {
        byte[] blob = Save(_kbc);
        Assert.Throws<StateFormatException>(() => Restore(new I8042(new FakeInterruptLine(), _machine), blob[..10]));
        byte[] wrongVersion = [.. blob];
        wrongVersion[0] = 0;
        Assert.Throws<StateFormatException>(() => Restore(new I8042(new FakeInterruptLine(), _machine), wrongVersion));
    }

    [Fact]
    public void ResetReturnsToPowerOnState()
    {
        Command(0xAA);
        Command(0x60);
        Send(0x00);
        Send(0xF5);
        _kbc.Reset();
        Assert.Equal(0x10, Status); // empty, no system flag, last write was data
        Command(0x20);
        Assert.Equal([0x61], Drain());
        Assert.True(_kbc.InjectCtrlAltDel()); // scanning again
    }

    [Fact]
    public void OddAccessesAreIgnoredAndCounted()
    {
        Span<byte> wide = stackalloc byte[4];
        _kbc.DataPort.Read(0, wide);
        _kbc.CommandPort.Write(0, [0xFE, 0, 0, 0]);
        _kbc.CommandPort.Write(1, [0xFE]);
        Assert.Empty(_machine.Resets);
        Assert.Equal(3, _kbc.UnexpectedAccesses);
    }
}
