using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using static Kiln.Tests.Devices.Port;

namespace Kiln.Tests.Devices;

public sealed class Serial8250Tests
{
    private const ulong Rbr = 0, Ier = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Msr = 6, Scr = 7;

    private readonly FakeInterruptLine _irq = new();
    private readonly FakeSerialOutput _output = new();
    private readonly Serial8250 _uart;

    public Serial8250Tests() => _uart = new Serial8250(Serial8250.Com1Base, _irq, _output);

    [Fact]
    public void DivisorLatchRoundTripsAndDlabSwitchesOffsetsBack()
    {
        Out(_uart, Lcr, 0x83);
        Out(_uart, 0, 0x01);
        Out(_uart, 1, 0x02);
        Assert.Equal(0x01, In(_uart, 0));
        Assert.Equal(0x02, In(_uart, 1));
        Assert.Empty(_output.Bytes); // divisor writes are not transmissions

        Out(_uart, Lcr, 0x03);
        Assert.Equal(0x03, In(_uart, Lcr));
        Assert.Equal(0x00, In(_uart, Ier)); // IER, not DLM
        Out(_uart, Ier, 0x01);

        Out(_uart, Lcr, 0x83);
        Assert.Equal(0x01, In(_uart, 0));
        Assert.Equal(0x02, In(_uart, 1));
        Out(_uart, Lcr, 0x03);
        Assert.Equal(0x01, In(_uart, Ier));
    }

    [Fact]
    public void TransmitGoesToSinkAndLsrStaysEmpty()
    {
        Assert.Equal(0x60, In(_uart, Lsr));
        Out(_uart, Rbr, (byte)'h');
        Out(_uart, Rbr, (byte)'i');
        Assert.Equal("hi"u8.ToArray(), _output.Bytes);
        Assert.Equal(0x60, In(_uart, Lsr)); // THRE | TEMT, no DR
        Assert.Equal(2, _uart.BytesTransmitted);
    }

    [Fact]
    public void IerAndScratchReadBack()
    {
        Out(_uart, Ier, 0xFF);
        Assert.Equal(0x0F, In(_uart, Ier)); // only the four defined enables exist
        Out(_uart, Scr, 0x5A);
        Assert.Equal(0x5A, In(_uart, Scr));
        Out(_uart, Mcr, 0xFF);
        Assert.Equal(0x1F, In(_uart, Mcr));
    }

    [Fact]
    public void ThreInterruptSemantics()
    {
        Assert.Equal(0x01, In(_uart, Iir));
        Assert.False(_irq.Level);

        Out(_uart, Ier, 0x02); // ETBEI with THR empty raises THRE at once
        Assert.True(_irq.Level);
        Assert.Equal(0x02, In(_uart, Iir)); // reading IIR that reports THRE acknowledges it
        Assert.False(_irq.Level);
        Assert.Equal(0x01, In(_uart, Iir));

        Out(_uart, Rbr, (byte)'x'); // writing THR re-raises it (the byte leaves at once)
        Assert.True(_irq.Level);
        Assert.Equal(0x02, In(_uart, Iir));

        // Re-enabling ETBEI re-raises THRE even though it was acknowledged.
        Out(_uart, Ier, 0x00);
        Out(_uart, Ier, 0x02);
        Assert.True(_irq.Level);

        // Turning ETBEI off withdraws it.
        Out(_uart, Ier, 0x00);
        Assert.False(_irq.Level);
        Assert.Equal(0x01, In(_uart, Iir));
    }

    [Fact]
    public void IirReportsSourcesInPriorityOrder()
    {
        // Loopback with FIFOs off: a second byte overruns the one-byte holding register (line status),
        // the first is still there (received data), THR is empty (THRE) and the RTS change set DCTS (modem status).
        Out(_uart, Mcr, 0x10);
        Out(_uart, Ier, 0x0F);
        Out(_uart, Mcr, 0x12);
        Out(_uart, Rbr, 0x41);
        Out(_uart, Rbr, 0x42);
        Assert.True(_irq.Level);

        Assert.Equal(0x06, In(_uart, Iir));
        Assert.Equal(0x63, In(_uart, Lsr)); // DR | OE | THRE | TEMT; reading clears OE
        Assert.Equal(0x04, In(_uart, Iir));
        Assert.Equal(0x41, In(_uart, Rbr));
        Assert.Equal(0x02, In(_uart, Iir)); // THRE, acknowledged by this read
        Assert.Equal(0x00, In(_uart, Iir)); // modem status
        // CTS (from RTS), plus the deltas of entering loopback (CTS, DSR, DCD dropped) and of raising RTS;
        // reading clears them.
        Assert.Equal(0x1B, In(_uart, Msr));
        Assert.Equal(0x01, In(_uart, Iir));
        Assert.False(_irq.Level);
        Assert.Equal(1, _uart.Overruns);
    }

    [Fact]
    public void FifoEnabledShowsInIirAndCanBeCleared()
    {
        Out(_uart, Fcr, 0x01);
        Assert.Equal(0xC1, In(_uart, Iir));
        Assert.Equal(3, _uart.EnqueueInput("abc"u8));
        Out(_uart, Fcr, 0x03); // clear RX FIFO
        Assert.Equal(0x60, In(_uart, Lsr));
        Out(_uart, Fcr, 0x00);
        Assert.Equal(0x01, In(_uart, Iir));
    }

    [Fact]
    public void RxFifoAcceptsSixtyFourThenDrains()
    {
        Out(_uart, Fcr, 0xC7);
        Out(_uart, Ier, 0x01);
        var input = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        Assert.Equal(64, _uart.EnqueueInput(input));
        Assert.False(_uart.CanAcceptInput);
        Assert.Equal(0, _uart.EnqueueInput(input.AsSpan(64)));
        Assert.True(_irq.Level);
        Assert.Equal(0xC4, In(_uart, Iir));

        for (int i = 0; i < 64; i++)
        {
            Assert.Equal(0x01, In(_uart, Lsr) & 0x01);
            Assert.Equal((byte)i, In(_uart, Rbr));
        }
        Assert.Equal(0x00, In(_uart, Lsr) & 0x01);
        Assert.False(_irq.Level);
        Assert.Equal(64, _uart.BytesReceived);
        Assert.True(_uart.CanAcceptInput);
    }

    [Fact]
    public void WithoutFifoOnlyOneByteIsHeld()
    {
        Assert.Equal(1, _uart.EnqueueInput("xy"u8));
        Assert.Equal((byte)'x', In(_uart, Rbr));
        Assert.Equal(1, _uart.EnqueueInput("y"u8));
    }

    [Fact]
    public void RefusedInputIsToldWhenSpaceFreesUp()
    {
        int wakeups = 0;
        _uart.InputSpaceAvailable += () => wakeups++;
        Out(_uart, Fcr, 0x01);
        Assert.Equal(64, _uart.EnqueueInput(new byte[64]));
        Assert.Equal(0, wakeups); // nothing was refused yet
        Assert.Equal(0, _uart.EnqueueInput(new byte[1]));
        In(_uart, Rbr);
        Assert.Equal(1, wakeups);
        In(_uart, Rbr);
        Assert.Equal(1, wakeups); // once per refusal, not per byte
        Assert.Equal(2, _uart.EnqueueInput(new byte[2]));
    }

    [Fact]
    public void LoopbackRoutesTransmitToReceiverAndMcrToMsr()
    {
        Assert.Equal(0xB0, In(_uart, Msr) & 0xF0); // a ready peer outside loopback
        Out(_uart, Mcr, 0x10);
        Assert.Equal(0x00, In(_uart, Msr) & 0xF0);
        Out(_uart, Mcr, 0x1A); // OUT2 | RTS -> DCD | CTS: Linux's loopback probe expects 0x90
        Assert.Equal(0x90, In(_uart, Msr) & 0xF0);
        Out(_uart, Mcr, 0x1F);
        Assert.Equal(0xF0, In(_uart, Msr) & 0xF0);

        Out(_uart, Fcr, 0x01);
        Out(_uart, Rbr, 0x55);
        Out(_uart, Rbr, 0xAA);
        Assert.Empty(_output.Bytes);
        Assert.Equal(0, _uart.BytesTransmitted);
        Assert.False(_uart.CanAcceptInput); // the console is disconnected in loopback
        Assert.Equal(0, _uart.EnqueueInput("z"u8));
        Assert.Equal(0x61, In(_uart, Lsr));
        Assert.Equal(0x55, In(_uart, Rbr));
        Assert.Equal(0xAA, In(_uart, Rbr));

        Out(_uart, Mcr, 0x0B);
        Assert.True(_uart.CanAcceptInput);
        Out(_uart, Rbr, 0x33);
        Assert.Equal([0x33], _output.Bytes);
    }

    [Fact]
    public void InterruptLineIsDrivenOnlyOnChange()
    {
        Out(_uart, Ier, 0x03);      // THRE -> high
        Out(_uart, Rbr, 1);         // still high: no call
        Out(_uart, Rbr, 2);
        _uart.EnqueueInput("a"u8);  // RX data while already high: no call
        Assert.Equal(0x04, In(_uart, Iir));
        In(_uart, Rbr);             // RX gone, THRE still pending: no call
        Assert.Equal(0x02, In(_uart, Iir)); // -> low
        In(_uart, Iir);             // still low: no call
        Out(_uart, Rbr, 3);         // -> high
        Assert.Equal([true, false, true], _irq.Calls);
        Assert.Equal(0, _irq.RepeatedLevels);
    }

    [Fact]
    public void SaveRestoreIntoFreshInstanceGivesIdenticalRegisters()
    {
        Out(_uart, Lcr, 0x80);
        Out(_uart, 0, 0x03);
        Out(_uart, 1, 0x00);
        Out(_uart, Lcr, 0x1B);
        Out(_uart, Fcr, 0x81);
        Out(_uart, Ier, 0x07);
        Out(_uart, Mcr, 0x0B);
        Out(_uart, Scr, 0x99);
        _uart.EnqueueInput("saved"u8);
        byte[] blob = Save(_uart);

        var irq2 = new FakeInterruptLine();
        var copy = new Serial8250(Serial8250.Com1Base, irq2, new FakeSerialOutput());
        Restore(copy, blob);
        Assert.Equal(blob, Save(copy));
        Assert.Equal(_irq.Level, irq2.Level);
        Assert.True(irq2.Level); // the restored UART re-asserts its pending interrupt

        // Same reads, in the same order, must give the same values (reads have side effects on both alike).
        Assert.Equal(ReadAll(_uart), ReadAll(copy));
    }

    [Fact]
    public void SaveRestoreReadSequencesMatch()
    {
        Out(_uart, Fcr, 0x01);
        Out(_uart, Ier, 0x0F);
        Out(_uart, Mcr, 0x10);
        Out(_uart, Mcr, 0x13);
        Out(_uart, Rbr, 7);
        _uart.EnqueueInput("q"u8);
        var copy = new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), null);
        Restore(copy, Save(_uart));
        Assert.Equal(ReadAll(_uart), ReadAll(copy));
    }

    [Fact]
    public void RestoreRefusesTruncatedOrWrongVersionState()
    {
        Out(_uart, Scr, 0x42);
        _uart.EnqueueInput("x"u8);
        byte[] blob = Save(_uart);
        var fresh = new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), null);

        Assert.Throws<StateFormatException>(() => Restore(fresh, blob[..(blob.Length / 2)]));
        Assert.Throws<StateFormatException>(() => Restore(fresh, blob[..^1]));
        Assert.Throws<StateFormatException>(() => Restore(fresh, []));
        byte[] wrongVersion = [.. blob];
        wrongVersion[0] = 99;
        Assert.Throws<StateFormatException>(() => Restore(fresh, wrongVersion));
        // A failed restore leaves the device untouched.
        Assert.Equal(0x00, In(fresh, Scr));
        Assert.Equal(0x60, In(fresh, Lsr));
    }

    [Fact]
    public void RestoreRefusesOverfullFifo()
    {
        Out(_uart, Fcr, 0x01);
        _uart.EnqueueInput("ab"u8);
        byte[] blob = Save(_uart);
        blob[2] = 0; // FCR with FIFOs off: two held bytes no longer fit
        Assert.Throws<StateFormatException>(() => Restore(new Serial8250(0x3F8, new FakeInterruptLine(), null), blob));
    }

    [Fact]
    public void RestoreRefusesCorruptLengths()
    {
        byte[] blob = Save(_uart);
        byte[] hugeLength = [.. blob];
        hugeLength.AsSpan(12, 4).Fill(0xFF); // the FIFO image's length prefix
        Assert.Throws<StateFormatException>(() => Restore(new Serial8250(0x3F8, new FakeInterruptLine(), null), hugeLength));
        byte[] hugeCount = [.. blob];
        hugeCount[11] = 200;
        Assert.Throws<StateFormatException>(() => Restore(new Serial8250(0x3F8, new FakeInterruptLine(), null), hugeCount));
    }

    [Fact]
    public void ResetReturnsToPowerOnState()
    {
        Out(_uart, Fcr, 0x01);
        Out(_uart, Ier, 0x03);
        Out(_uart, Lcr, 0x1B);
        _uart.EnqueueInput("abc"u8);
        Assert.True(_irq.Level);
        _uart.Reset();
        Assert.False(_irq.Level);
        Assert.Equal(0x01, In(_uart, Iir));
        Assert.Equal(0x00, In(_uart, Ier));
        Assert.Equal(0x00, In(_uart, Lcr));
        Assert.Equal(0x60, In(_uart, Lsr));
        Assert.Equal(3, _uart.BytesReceived); // counters survive
    }

    [Fact]
    public void OddAccessesAreIgnoredAndCounted()
    {
        Span<byte> wide = stackalloc byte[2];
        _uart.Read(0, wide);
        Assert.Equal(0xFFFF, BitConverter.ToUInt16(wide));
        _uart.Write(0, [1, 2]);
        _uart.Write(8, [1]);
        Assert.Equal(0xFF, In(_uart, 9));
        Assert.Empty(_output.Bytes);
        Assert.Equal(4, _uart.UnexpectedAccesses);
    }

    [Fact]
    public async Task ConcurrentTransmitAndInputKeepCounts()
    {
        var output = new CountingOutput();
        var uart = new Serial8250(Serial8250.Com1Base, new FakeInterruptLine(), output);
        Out(uart, Fcr, 0x01);
        Out(uart, Ier, 0x0F);
        var writers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            for (int i = 0; i < 20_000; i++)
                Out(uart, Rbr, (byte)i);
        })).ToArray();
        long accepted = 0;
        var reader = Task.Run(() =>
        {
            for (int i = 0; i < 20_000; i++)
            {
                accepted += uart.EnqueueInput("k"u8);
                In(uart, Rbr);
            }
        });
        await Task.WhenAll([.. writers, reader]);
        Assert.Equal(40_000, output.Count);
        Assert.Equal(40_000, uart.BytesTransmitted);
        Assert.Equal(accepted, uart.BytesReceived);
    }

    private sealed class CountingOutput : ISerialOutput
    {
        public int Count;

        public void Write(byte b) => Count++; // called under the UART's lock, so no interlock needed
    }

    private static byte[] ReadAll(Serial8250 u)
    {
        var values = new List<byte>();
        for (ulong r = 1; r < 8; r++)
            values.Add(In(u, r));
        values.Add(In(u, Rbr));
        values.Add(In(u, Lsr));
        byte lcr = In(u, Lcr);
        Out(u, Lcr, (byte)(lcr | 0x80));
        values.Add(In(u, 0));
        values.Add(In(u, 1));
        Out(u, Lcr, lcr);
        return [.. values];
    }
}
