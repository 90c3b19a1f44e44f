using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>A 16550A-compatible UART (the PC's COM ports). Register it at its base port with length
/// <see cref="PortCount"/>. Transmission is instantaneous: a byte written to THR goes straight to the
/// <see cref="ISerialOutput"/>, so THR and the transmitter always read as empty. Input arrives through
/// <see cref="EnqueueInput"/> from a console thread into a 64-byte receive FIFO (1 byte while FIFOs are off).
/// One file over 400 lines on purpose: the 16550A register file, its FIFOs and interrupt identification are one state machine (as in QEMU's serial.c), with its saved state.</summary>
/// <remarks>The interrupt output is not gated by MCR.OUT2 (as on a PC motherboard): like other VMMs we let the
/// guest's IER alone decide, which is what Linux and the BIOS-less boot path expect.</remarks>
public sealed class Serial8250 : IBusDevice, IStateful, ISerialInput
{
    public const ushort Com1Base = 0x3F8;
    public const ushort Com2Base = 0x2F8;
    public const ushort Com3Base = 0x3E8;
    public const ushort Com4Base = 0x2E8;
    public const int Com1Irq = 4;
    public const int Com2Irq = 3;

    /// <summary>Length of the port range to register.</summary>
    public const ulong PortCount = 8;

    /// <summary>Receive FIFO depth while FIFOs are enabled.</summary>
    public const int FifoSize = 64;

    private const byte StateVersion = 1;

    // Register offsets. Offsets 0 and 1 are the divisor latch while LCR.DLAB is set.
    private const int RegData = 0, RegIer = 1, RegIirFcr = 2, RegLcr = 3, RegMcr = 4, RegLsr = 5, RegMsr = 6, RegScr = 7;

    private const byte IerRxData = 0x01, IerThre = 0x02, IerLineStatus = 0x04, IerModemStatus = 0x08, IerMask = 0x0F;

    private const byte IirNone = 0x01, IirLineStatus = 0x06, IirRxData = 0x04, IirThre = 0x02, IirModemStatus = 0x00;
    private const byte IirFifoEnabled = 0xC0;

    private const byte FcrEnable = 0x01, FcrClearRx = 0x02;
    // Enable, DMA mode and trigger level are remembered; the two clear bits are self-clearing actions.
    private const byte FcrKeptBits = 0xC9;

    private const byte LcrDlab = 0x80;

    private const byte McrDtr = 0x01, McrRts = 0x02, McrOut1 = 0x04, McrOut2 = 0x08, McrLoop = 0x10, McrMask = 0x1F;

    private const byte LsrDataReady = 0x01, LsrOverrun = 0x02, LsrErrorBits = 0x1E, LsrThre = 0x20, LsrTemt = 0x40;

    private const byte MsrDeltaCts = 0x01, MsrDeltaDsr = 0x02, MsrTrailingRi = 0x04, MsrDeltaDcd = 0x08, MsrDeltaMask = 0x0F;
    private const byte MsrCts = 0x10, MsrDsr = 0x20, MsrRi = 0x40, MsrDcd = 0x80;
    // Outside loopback no modem is attached; report a present, ready peer (carrier, DSR, CTS) so guests that
    // honour flow control keep transmitting.
    private const byte MsrIdleLines = MsrDcd | MsrDsr | MsrCts;

    // Power-on divisor: 9600 baud from the 1.8432 MHz clock. The guest reprograms it; the value only matters
    // for a guest that reads it back before writing it.
    private const byte DefaultDll = 0x0C;

    private readonly Lock _lock = new();
    private readonly IInterruptLine _irq;
    private readonly ISerialOutput? _output;
    private readonly ushort _basePort;

    private byte _ier;
    private byte _fcr;
    private byte _lcr;
    private byte _mcr;
    private byte _lsrErrors;
    private byte _msrDeltas;
    private byte _scr;
    private byte _dll = DefaultDll;
    private byte _dlm;
    private bool _thrInterruptPending;

    // Receive FIFO as a ring buffer, so the guest's reads and the console's writes never allocate.
    private readonly byte[] _rx = new byte[FifoSize];
    private int _rxHead;
    private int _rxCount;

    private bool _irqLevel;
    // Set when EnqueueInput had to refuse bytes; the next time space frees up we raise InputSpaceAvailable.
    private bool _inputRefused;

    private long _bytesTransmitted;
    private long _bytesReceived;
    private long _overruns;
    private long _unexpectedAccesses;

    /// <param name="basePort">The port the UART is registered at (names the state section, e.g. "serial@3f8").</param>
    /// <param name="irq">The UART's interrupt line (IRQ 4 for COM1).</param>
    /// <param name="output">Transmitted bytes; null discards them (a port with nothing attached).</param>
    public Serial8250(ushort basePort, IInterruptLine irq, ISerialOutput? output)
    {
        _basePort = basePort;
        _irq = irq;
        _output = output;
    }

    /// <summary>Raised when receive space frees up after <see cref="EnqueueInput"/> refused bytes, so a console
    /// reader can wait instead of dropping input. Raised on a vCPU thread (outside the UART's lock): the handler
    /// must be cheap and must not block, e.g. set an event the console thread waits on. To avoid a lost wake-up the
    /// reader should reset its event before calling <see cref="EnqueueInput"/>, then wait only if bytes were refused.</summary>
    public event Action? InputSpaceAvailable;

    public string StateId => $"serial@{_basePort:x}";

    /// <summary>Bytes delivered to the output sink (loopback traffic is not counted).</summary>
    public long BytesTransmitted => Interlocked.Read(ref _bytesTransmitted);

    /// <summary>Bytes accepted by <see cref="EnqueueInput"/>.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>Loopback bytes lost because the receiver was full (the guest sees LSR.OE).</summary>
    public long Overruns => Interlocked.Read(ref _overruns);

    /// <summary>Accesses of a size other than one byte, or outside the 8 registers; reads returned all-ones.</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    /// <summary>True when <see cref="EnqueueInput"/> would accept at least one byte now.</summary>
    public bool CanAcceptInput
    {
        get
        {
            lock (_lock)
                return RxSpace > 0;
        }
    }

    private bool FifoEnabled => (_fcr & FcrEnable) != 0;
    private bool Loopback => (_mcr & McrLoop) != 0;
    private bool Dlab => (_lcr & LcrDlab) != 0;
    private int RxCapacity => FifoEnabled ? FifoSize : 1;

    // In loopback the receiver is disconnected from the line, so the console may not feed it.
    private int RxSpace => Loopback ? 0 : RxCapacity - _rxCount;

    /// <summary>Feeds bytes from the host side into the receive FIFO. Thread-safe. Returns how many were accepted
    /// (fewer than offered when the FIFO fills; see <see cref="InputSpaceAvailable"/>).</summary>
    public int EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
            return 0;
        lock (_lock)
        {
            int accepted = Math.Min(RxSpace, bytes.Length);
            for (int i = 0; i < accepted; i++)
                PushRx(bytes[i]);
            if (accepted < bytes.Length)
                _inputRefused = true;
            if (accepted > 0)
            {
                _bytesReceived += accepted;
                UpdateInterrupt();
            }
            return accepted;
        }
    }

    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || offset >= PortCount)
        {
            data.Fill(0xFF);
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        bool spaceFreed;
        lock (_lock)
        {
            data[0] = ReadRegister((int)offset);
            UpdateInterrupt();
            spaceFreed = TakeSpaceFreed();
        }
        if (spaceFreed)
            InputSpaceAvailable?.Invoke();
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || offset >= PortCount)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        bool spaceFreed;
        lock (_lock)
        {
            WriteRegister((int)offset, data[0]);
            UpdateInterrupt();
            spaceFreed = TakeSpaceFreed();
        }
        if (spaceFreed)
            InputSpaceAvailable?.Invoke();
    }

    /// <summary>Returns the UART to its power-on register state (machine reset); counters are kept.</summary>
    public void Reset()
    {
        bool spaceFreed;
        lock (_lock)
        {
            _ier = 0;
            _fcr = 0;
            _lcr = 0;
            _mcr = 0;
            _lsrErrors = 0;
            _msrDeltas = 0;
            _scr = 0;
            _dll = DefaultDll;
            _dlm = 0;
            _thrInterruptPending = false;
            ClearRx();
            UpdateInterrupt();
            spaceFreed = TakeSpaceFreed();
        }
        if (spaceFreed)
            InputSpaceAvailable?.Invoke();
    }

    private byte ReadRegister(int register)
    {
        switch (register)
        {
            case RegData:
                return Dlab ? _dll : PopRx();
            case RegIer:
                return Dlab ? _dlm : _ier;
            case RegIirFcr:
            {
                byte iir = ComputeIir();
                // Reading IIR is what acknowledges a THRE interrupt, but only when THRE is the source it reports.
                if (iir == IirThre)
                    _thrInterruptPending = false;
                return (byte)(iir | (FifoEnabled ? IirFifoEnabled : 0));
            }
            case RegLcr:
                return _lcr;
            case RegMcr:
                return _mcr;
            case RegLsr:
            {
                // THR and the transmitter are always empty: output goes to the sink the moment it is written.
                byte lsr = (byte)(LsrThre | LsrTemt | _lsrErrors | (_rxCount > 0 ? LsrDataReady : 0));
                _lsrErrors = 0; // error bits clear on read, which also acknowledges a line-status interrupt
                return lsr;
            }
            case RegMsr:
            {
                byte msr = (byte)(ModemLines() | _msrDeltas);
                _msrDeltas = 0;
                return msr;
            }
            default:
                return _scr;
        }
    }

    private void WriteRegister(int register, byte value)
    {
        switch (register)
        {
            case RegData:
                if (Dlab)
                    _dll = value;
                else
                    Transmit(value);
                break;
            case RegIer:
                if (Dlab)
                    _dlm = value;
                else
                    WriteIer(value);
                break;
            case RegIirFcr:
                WriteFcr(value);
                break;
            case RegLcr:
                _lcr = value;
                break;
            case RegMcr:
                WriteMcr(value);
                break;
            case RegScr:
                _scr = value;
                break;
            default:
                // LSR and MSR are read-only (writes are a factory-test feature on real parts).
                break;
        }
    }

    private void Transmit(byte value)
    {
        if (Loopback)
        {
            if (_rxCount < RxCapacity)
                PushRx(value);
            else
            {
                _lsrErrors |= LsrOverrun;
                _overruns++;
            }
        }
        else
        {
            _output?.Write(value);
            _bytesTransmitted++;
        }
        // Writing THR clears a pending THRE interrupt, but the byte leaves at once, so THR is empty again and
        // the interrupt is re-asserted: net effect, THRE is pending after every write.
        _thrInterruptPending = true;
    }

    private void WriteIer(byte value)
    {
        byte old = _ier;
        _ier = (byte)(value & IerMask);
        // A rising ETBEI with THR empty raises THRE even if an earlier one was acknowledged by reading IIR (guests
        // toggle ETBEI to kick transmission; Linux's startup THRE test relies on it). A falling one withdraws it.
        if (((old ^ _ier) & IerThre) != 0)
            _thrInterruptPending = (_ier & IerThre) != 0;
    }

    private void WriteFcr(byte value)
    {
        bool enable = (value & FcrEnable) != 0;
        // Changing the FIFO enable empties both FIFOs (16550A data sheet); our TX FIFO is always empty.
        if (enable != FifoEnabled)
            ClearRx();
        if (!enable)
        {
            // With FCR0 clear, the other FCR bits are not programmed.
            _fcr = 0;
            return;
        }
        if ((value & FcrClearRx) != 0)
            ClearRx();
        _fcr = (byte)(value & FcrKeptBits);
    }

    private void WriteMcr(byte value)
    {
        byte oldLines = ModemLines();
        _mcr = (byte)(value & McrMask);
        byte newLines = ModemLines();
        byte changed = (byte)(oldLines ^ newLines);
        if ((changed & MsrCts) != 0)
            _msrDeltas |= MsrDeltaCts;
        if ((changed & MsrDsr) != 0)
            _msrDeltas |= MsrDeltaDsr;
        if ((changed & MsrDcd) != 0)
            _msrDeltas |= MsrDeltaDcd;
        if ((oldLines & MsrRi) != 0 && (newLines & MsrRi) == 0)
            _msrDeltas |= MsrTrailingRi;
        // Leaving loopback reconnects the receiver to the console; if input was refused meanwhile, the caller's
        // TakeSpaceFreed sees the space and wakes the reader.
    }

    /// <summary>The modem input lines: in loopback they are wired to the MCR outputs (RTS→CTS, DTR→DSR, OUT1→RI,
    /// OUT2→DCD); otherwise a ready peer.</summary>
    private byte ModemLines()
    {
        if (!Loopback)
            return MsrIdleLines;
        byte lines = 0;
        if ((_mcr & McrRts) != 0)
            lines |= MsrCts;
        if ((_mcr & McrDtr) != 0)
            lines |= MsrDsr;
        if ((_mcr & McrOut1) != 0)
            lines |= MsrRi;
        if ((_mcr & McrOut2) != 0)
            lines |= MsrDcd;
        return lines;
    }

    /// <summary>The highest-priority pending source: line status, then received data, then THRE, then modem status.</summary>
    private byte ComputeIir()
    {
        if ((_ier & IerLineStatus) != 0 && (_lsrErrors & LsrErrorBits) != 0)
            return IirLineStatus;
        // Data is reported as soon as one byte is present rather than at the FIFO trigger level: without a
        // character-timeout timer that is the only way a short input line is ever delivered.
        if ((_ier & IerRxData) != 0 && _rxCount > 0)
            return IirRxData;
        if ((_ier & IerThre) != 0 && _thrInterruptPending)
            return IirThre;
        if ((_ier & IerModemStatus) != 0 && _msrDeltas != 0)
            return IirModemStatus;
        return IirNone;
    }

    /// <summary>Drives the line only when its level changes. Called under the lock so that two vCPUs cannot
    /// deliver their levels out of order.</summary>
    private void UpdateInterrupt()
    {
        bool level = ComputeIir() != IirNone;
        if (level == _irqLevel)
            return;
        _irqLevel = level;
        _irq.Set(level);
    }

    private bool TakeSpaceFreed()
    {
        if (!_inputRefused || RxSpace == 0)
            return false;
        _inputRefused = false;
        return true;
    }

    private void PushRx(byte value)
    {
        _rx[(_rxHead + _rxCount) % FifoSize] = value;
        _rxCount++;
    }

    private byte PopRx()
    {
        if (_rxCount == 0)
            return 0;
        byte value = _rx[_rxHead];
        _rxHead = (_rxHead + 1) % FifoSize;
        _rxCount--;
        return value;
    }

    private void ClearRx()
    {
        _rxHead = 0;
        _rxCount = 0;
    }

    public void SaveState(StateWriter writer)
    {
        lock (_lock)
        {
            writer.WriteByte(StateVersion);
            writer.WriteByte(_ier);
            writer.WriteByte(_fcr);
            writer.WriteByte(_lcr);
            writer.WriteByte(_mcr);
            writer.WriteByte(_lsrErrors);
            writer.WriteByte(_msrDeltas);
            writer.WriteByte(_scr);
            writer.WriteByte(_dll);
            writer.WriteByte(_dlm);
            writer.WriteBool(_thrInterruptPending);
            // Count plus a fixed-size image: the reader then checks an exact length instead of trusting one.
            Span<byte> rx = stackalloc byte[FifoSize];
            rx.Clear();
            for (int i = 0; i < _rxCount; i++)
                rx[i] = _rx[(_rxHead + i) % FifoSize];
            writer.WriteByte((byte)_rxCount);
            writer.WriteBytes(rx);
        }
    }

    public void RestoreState(StateReader reader)
    {
        // Parse and validate everything before touching the live registers, so a bad blob leaves the UART as it was.
        reader.ExpectVersion(StateId, StateVersion);
        byte ier = reader.ReadByte();
        byte fcr = reader.ReadByte();
        byte lcr = reader.ReadByte();
        byte mcr = reader.ReadByte();
        byte lsrErrors = reader.ReadByte();
        byte msrDeltas = reader.ReadByte();
        byte scr = reader.ReadByte();
        byte dll = reader.ReadByte();
        byte dlm = reader.ReadByte();
        bool thrPending = reader.ReadBool();
        int rxCount = reader.ReadByte();
        var rx = new byte[FifoSize];
        reader.ReadBytes(rx);

        if ((ier & ~IerMask) != 0 || (fcr & ~FcrKeptBits) != 0 || (mcr & ~McrMask) != 0
            || (lsrErrors & ~LsrErrorBits) != 0 || (msrDeltas & ~MsrDeltaMask) != 0)
            throw new StateFormatException($"{StateId}: register value out of range");
        int capacity = (fcr & FcrEnable) != 0 ? FifoSize : 1;
        if (rxCount > capacity)
            throw new StateFormatException($"{StateId}: {rxCount} received bytes exceed the FIFO depth {capacity}");

        bool spaceFreed;
        lock (_lock)
        {
            _ier = ier;
            _fcr = fcr;
            _lcr = lcr;
            _mcr = mcr;
            _lsrErrors = lsrErrors;
            _msrDeltas = msrDeltas;
            _scr = scr;
            _dll = dll;
            _dlm = dlm;
            _thrInterruptPending = thrPending;
            ClearRx();
            for (int i = 0; i < rxCount; i++)
                PushRx(rx[i]);
            UpdateInterrupt();
            spaceFreed = TakeSpaceFreed();
        }
        if (spaceFreed)
            InputSpaceAvailable?.Invoke();
    }
}
