using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using static Kiln.Tests.Devices.Port;

namespace Kiln.Tests.Devices;

public sealed class PlatformPortTests
{
    private readonly FakeMachineControl _machine = new();

    [Theory]
    [InlineData(0UL, 1)]
    [InlineData(5UL, 11)]
    [InlineData(0x7FUL, 0xFF)]
    [InlineData(0x80UL, 0x101)]         // the OS keeps the low 8 bits: 1
    [InlineData(0xFFFF_FFFFUL, -1)]     // (v << 1) | 1 = 0x1_FFFF_FFFF, truncated to an int
    public void DebugExitStatusIsValueTimesTwoPlusOne(ulong value, int expected)
    {
        var exit = new DebugExit(_machine);
        byte[] bytes = BitConverter.GetBytes((uint)value);
        exit.Write(0, bytes);
        Assert.Equal(expected, _machine.Exits.Single().Code);
        Assert.Equal(expected, DebugExit.ExitCodeFor(value));
    }

    [Fact]
    public void DebugExitAcceptsAnyWidthAndOffsetAndReadsZero()
    {
        var exit = new DebugExit(_machine, 0x501);
        exit.Write(0, [0x00]);
        exit.Write(2, [0x05, 0x00]);
        Assert.Equal([1, 11], _machine.Exits.Select(e => e.Code));
        Assert.Contains("0x503", _machine.Exits[1].Reason);
        Span<byte> data = stackalloc byte[4];
        data.Fill(0xAA);
        exit.Read(0, data);
        Assert.Equal(0u, BitConverter.ToUInt32(data));
        exit.Write(4, [1]);
        exit.Write(0, []);
        Assert.Equal(2, _machine.Exits.Count);
        Assert.Equal(2, exit.UnexpectedAccesses);
        Assert.Equal("debug-exit@501", exit.StateId);
    }

    [Fact]
    public void ResetControlResetsOnBitTwoOnly()
    {
        var rcr = new ResetControl(_machine);
        Out(rcr, 0, 0x02); // select hard reset: no reset yet
        Assert.Empty(_machine.Resets);
        Assert.Equal(0x02, In(rcr, 0));
        Out(rcr, 0, 0x06);
        Assert.Equal(["port 0xcf9"], _machine.Resets);
        Assert.Equal(0x02, In(rcr, 0)); // RST_CPU is not remembered
        Out(rcr, 0, 0x04); // soft reset also resets
        Assert.Equal(2, _machine.Resets.Count);

        var copy = new ResetControl(_machine);
        Out(rcr, 0, 0x0A);
        Restore(copy, Save(rcr));
        Assert.Equal(0x0A, In(copy, 0));
    }

    [Fact]
    public void Port92FastResetOnRisingEdgeAndA20Readable()
    {
        var port92 = new SystemControlPortA(_machine);
        Assert.Equal(0x02, In(port92, 0));
        Assert.True(port92.A20Enabled);
        Out(port92, 0, 0x00);
        Assert.False(port92.A20Enabled);
        Assert.Equal(0x00, In(port92, 0));
        Assert.Empty(_machine.Resets);

        Out(port92, 0, 0x03);
        Assert.Equal(["port 0x92"], _machine.Resets);
        Assert.Equal(0x03, In(port92, 0));
        Out(port92, 0, 0x03); // no new edge
        Assert.Single(_machine.Resets);
        port92.Reset();       // the machine's reset path clears bit 0
        Assert.Equal(0x02, In(port92, 0));
        Out(port92, 0, 0x01);
        Assert.Equal(2, _machine.Resets.Count);

        var copy = new SystemControlPortA(_machine);
        Restore(copy, Save(port92));
        Assert.Equal(0x01, In(copy, 0));
    }

    [Fact]
    public void PostCodeAbsorbsWritesAndRemembersTheLast()
    {
        var post = new PostCode();
        for (int i = 0; i < 1000; i++)
            Out(post, 0, (byte)i);
        post.Write(0, [0x34, 0x12]);
        Assert.Equal(1001, post.Writes);
        Assert.Equal(0x34, post.LastValue);
        Assert.Equal(0x34, In(post, 0));
        Assert.Equal(0, post.UnexpectedAccesses);

        var copy = new PostCode();
        Restore(copy, Save(post));
        Assert.Equal(0x34, copy.LastValue);
    }

    [Fact]
    public void SmallDevicesRefuseWrongVersions()
    {
        var rcr = new ResetControl(_machine);
        var port92 = new SystemControlPortA(_machine);
        var post = new PostCode();
        var exit = new DebugExit(_machine);
        Assert.Throws<StateFormatException>(() => Restore(rcr, [2, 0]));
        Assert.Throws<StateFormatException>(() => Restore(rcr, [1]));
        Assert.Throws<StateFormatException>(() => Restore(rcr, [1, 0x04]));
        Assert.Throws<StateFormatException>(() => Restore(port92, [7, 0]));
        Assert.Throws<StateFormatException>(() => Restore(port92, []));
        Assert.Throws<StateFormatException>(() => Restore(post, [0, 0]));
        Assert.Throws<StateFormatException>(() => Restore(post, [1]));
        Assert.Throws<StateFormatException>(() => Restore(exit, [9]));
        Assert.Throws<StateFormatException>(() => Restore(exit, []));
        Restore(exit, Save(exit));
    }
}
