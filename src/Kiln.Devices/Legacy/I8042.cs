using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>An 8042 keyboard controller with a keyboard attached and no aux (mouse) port: enough for a guest to
/// probe it, for the classic reset paths (command 0xFE, output-port bit 0) and for injecting Ctrl-Alt-Del.
/// The two ports are not adjacent (0x61 belongs to the PIT/speaker), so register <see cref="DataPort"/> at 0x60 and
/// <see cref="CommandPort"/> at 0x64, each with length 1.
/// One file over 400 lines on purpose: the controller's command set, its output buffer and the keyboard behind it are one state machine with one saved state.</summary>
/// <remarks>
/// Output model: controller replies and keyboard bytes wait in two small queues and move one at a time into the
/// output buffer. Keyboard bytes wait while the keyboard interface is disabled (command byte bit 4); controller
/// replies do not. IRQ 1 follows "output buffer full and command byte bit 0". After the guest reads a byte the line
/// drops before the next byte is loaded, so every byte gives the edge-triggered ISA IRQ a fresh edge.
/// <para>No aux port: 0xA9 (aux interface test) answers 0x02 and 0xD3 (aux loopback) comes back without the aux
/// flag, so Linux's AUX and MUX probes fail at once instead of waiting out their half-second timeouts.</para>
/// </remarks>
public sealed class I8042 : IStateful
{
    public const ushort DataPortAddress = 0x60;
    public const ushort CommandPortAddress = 0x64;
    public const ulong PortLength = 1;
    public const int Irq = 1;

    private const byte StateVersion = 1;
    private const int QueueCapacity = 16;
    private const int RamSize = 32; // controller RAM; byte 0 is the command byte

    // Status register.
    private const byte StatusOutputFull = 0x01, StatusSystemFlag = 0x04, StatusLastWasCommand = 0x08, StatusNotInhibited = 0x10;

    // Command byte ("controller configuration").
    private const byte CtrKeyboardInterrupt = 0x01, CtrSystemFlag = 0x04, CtrKeyboardDisabled = 0x10, CtrAuxDisabled = 0x20;
    private const byte CtrTranslate = 0x40;
    // Keyboard interrupt on, aux disabled, translation to scan code set 1 on: the state firmware leaves behind,
    // and the one in which the set-1 Ctrl-Alt-Del sequence is what the OS sees.
    private const byte DefaultCtr = CtrKeyboardInterrupt | CtrAuxDisabled | CtrTranslate;

    // Output port: bit 0 is the (active-low) system reset, bit 1 the A20 gate; bits 4/5 mirror the buffer state.
    private const byte OutResetInactive = 0x01, OutA20 = 0x02, OutKeyboardFull = 0x10, OutAuxFull = 0x20;
    private const byte DefaultOutputPort = 0xCF; // reset inactive, A20 on, clock/data lines high

    private const byte KbdAck = 0xFA, KbdSelfTestPassed = 0xAA, KbdEcho = 0xEE;

    private readonly Lock _lock = new();
    private readonly IInterruptLine _irq;
    private readonly IMachineControl _machine;

    private readonly byte[] _ram = new byte[RamSize];
    private byte _outputPort = DefaultOutputPort;
    private bool _systemFlag;
    private bool _lastWriteWasCommand;
    private byte _pendingCommand;         // controller command waiting for its data byte (0: none)
    private byte _pendingKeyboardCommand; // keyboard command waiting for its parameter (0: none)
    private bool _scanning = true;
    private byte _scanSet = 2;
    private byte _leds;
    private bool _outputFull;
    private byte _outputByte;
    private readonly ByteQueue _controllerQueue = new(QueueCapacity);
    private readonly ByteQueue _keyboardQueue = new(QueueCapacity);
    private bool _irqLevel;

    private long _unexpectedAccesses;
    private long _unknownCommands;
    private long _droppedBytes;

    /// <param name="irq">IRQ 1.</param>
    /// <param name="machine">Receives the reset requests (command 0xFE and friends, output port bit 0 cleared).</param>
    public I8042(IInterruptLine irq, IMachineControl machine)
    {
        _irq = irq;
        _machine = machine;
        _ram[0] = DefaultCtr;
        DataPort = new Port(this, isCommand: false);
        CommandPort = new Port(this, isCommand: true);
    }

    /// <summary>Port 0x60: read output buffer / write data (command parameters or bytes for the keyboard).</summary>
    public IBusDevice DataPort { get; }

    /// <summary>Port 0x64: read status / write controller command.</summary>
    public IBusDevice CommandPort { get; }

    public string StateId => "i8042";

    /// <summary>Accesses of a size other than one byte; reads returned all-ones.</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    /// <summary>Controller commands this model does not implement (ignored).</summary>
    public long UnknownCommands => Interlocked.Read(ref _unknownCommands);

    /// <summary>Bytes lost because a reply queue was full (a guest issuing commands without reading replies).</summary>
    public long DroppedBytes => Interlocked.Read(ref _droppedBytes);

    /// <summary>The keyboard LEDs the guest last set (bit 0 scroll, 1 num, 2 caps lock).</summary>
    public byte Leds
    {
        get
        {
            lock (_lock)
                return _leds;
        }
    }

    /// <summary>Types Ctrl-Alt-Del (press Ctrl, Alt, keypad Del, then release them in reverse order), which guests
    /// treat as a request to reboot or shut down gracefully. Returns false if the keyboard is not scanning (the guest
    /// disabled it) or the queue lacks room; the caller may retry or fall back to a hard stop.</summary>
    public bool InjectCtrlAltDel()
    {
        lock (_lock)
        {
            ReadOnlySpan<byte> sequence;
            if ((_ram[0] & CtrTranslate) != 0 || _scanSet == 1)
                sequence = [0x1D, 0x38, 0x53, 0xD3, 0xB8, 0x9D];                   // set 1 (or set 2 translated)
            else if (_scanSet == 2)
                sequence = [0x14, 0x11, 0x71, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14]; // raw set 2
            else
                return false; // set 3 keyboards are not modelled
            if (!_scanning || _keyboardQueue.Free < sequence.Length)
                return false;
            foreach (byte b in sequence)
                _keyboardQueue.TryEnqueue(b);
            Refill();
            UpdateInterrupt();
            return true;
        }
    }

    /// <summary>Returns controller and keyboard to their power-on state (machine reset).</summary>
    public void Reset()
    {
        lock (_lock)
        {
            Array.Clear(_ram);
            _ram[0] = DefaultCtr;
            _outputPort = DefaultOutputPort;
            _systemFlag = false;
            _lastWriteWasCommand = false;
            _pendingCommand = 0;
            _pendingKeyboardCommand = 0;
            _scanning = true;
            _scanSet = 2;
            _leds = 0;
            _outputFull = false;
            _outputByte = 0;
            _controllerQueue.Clear();
            _keyboardQueue.Clear();
            UpdateInterrupt();
        }
    }

    private void Read(bool isCommand, ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || offset != 0)
        {
            data.Fill(0xFF);
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        lock (_lock)
            data[0] = isCommand ? Status() : ReadData();
    }

    private void Write(bool isCommand, ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || offset != 0)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        string? resetReason;
        lock (_lock)
        {
            resetReason = isCommand ? WriteCommand(data[0]) : WriteData(data[0]);
            Refill();
            UpdateInterrupt();
        }
        // Outside the lock: the machine may reset this device from within the call.
        if (resetReason != null)
            _machine.RequestReset(resetReason);
    }

    private byte Status()
    {
        byte status = StatusNotInhibited;
        if (_outputFull)
            status |= StatusOutputFull;
        if (_systemFlag)
            status |= StatusSystemFlag;
        if (_lastWriteWasCommand)
            status |= StatusLastWasCommand;
        return status;
    }

    private byte ReadData()
    {
        // With nothing new, the buffer still holds (and returns) the last byte, as on the real part.
        if (!_outputFull)
            return _outputByte;
        byte value = _outputByte;
        _outputFull = false;
        UpdateInterrupt(); // drop the line first so the next byte produces a new edge
        Refill();
        UpdateInterrupt();
        return value;
    }

    private string? WriteCommand(byte command)
    {
        _lastWriteWasCommand = true;
        _pendingCommand = 0; // a new command abandons one still waiting for its parameter
        switch (command)
        {
            case >= 0x20 and <= 0x3F:
                QueueController(_ram[command & 0x1F]);
                break;
            case >= 0x60 and <= 0x7F:
            case 0xD1: // write output port
            case 0xD2: // write keyboard output buffer
            case 0xD3: // write aux output buffer
            case 0xD4: // write to aux device
                _pendingCommand = command;
                break;
            case 0xA7:
                _ram[0] |= CtrAuxDisabled;
                break;
            case 0xA8:
                _ram[0] &= unchecked((byte)~CtrAuxDisabled);
                break;
            case 0xA9:
                QueueController(0x02); // aux interface test: "clock line stuck high", i.e. nothing there
                break;
            case 0xAA:
                _systemFlag = true;
                QueueController(0x55);
                break;
            case 0xAB:
                QueueController(0x00);
                break;
            case 0xAD:
                _ram[0] |= CtrKeyboardDisabled;
                break;
            case 0xAE:
                _ram[0] &= unchecked((byte)~CtrKeyboardDisabled);
                break;
            case 0xD0:
                QueueController(OutputPortValue());
                break;
            case 0xDD:
                _outputPort &= unchecked((byte)~OutA20);
                break;
            case 0xDF:
                _outputPort |= OutA20;
                break;
            case >= 0xF0:
                // Pulse output-port lines for 6 us; bit n clear pulses line n, and line 0 is the CPU reset.
                if ((command & 0x01) == 0)
                    return "i8042 reset";
                break;
            default:
                _unknownCommands++;
                break;
        }
        return null;
    }

    private string? WriteData(byte value)
    {
        _lastWriteWasCommand = false;
        byte command = _pendingCommand;
        _pendingCommand = 0;
        switch (command)
        {
            case 0:
                // Sending to the keyboard re-enables its interface, as the 8042 firmware does.
                _ram[0] &= unchecked((byte)~CtrKeyboardDisabled);
                WriteKeyboard(value);
                break;
            case 0x60:
                WriteCommandByte(value);
                break;
            case > 0x60 and <= 0x7F:
                _ram[command & 0x1F] = value;
                break;
            case 0xD1:
                _outputPort = value;
                if ((value & OutResetInactive) == 0)
                    return "i8042 reset";
                break;
            case 0xD2:
                QueueController(value);
                break;
            case 0xD3:
                QueueController(value); // no aux port: echoed without the aux flag (see remarks)
                break;
            default:
                break; // 0xD4: no aux device to receive it
        }
        return null;
    }

    private void WriteCommandByte(byte value)
    {
        _ram[0] = value;
        // Command byte bit 2 is copied into the status register's system flag.
        _systemFlag = (value & CtrSystemFlag) != 0;
    }

    private byte OutputPortValue()
    {
        byte value = (byte)(_outputPort & ~(OutKeyboardFull | OutAuxFull));
        if (_outputFull)
            value |= OutKeyboardFull;
        return value;
    }

    private void WriteKeyboard(byte value)
    {
        byte pending = _pendingKeyboardCommand;
        _pendingKeyboardCommand = 0;
        // A byte that cannot be the awaited parameter is taken as a new command, as keyboards do.
        if (pending != 0 && value < 0xED)
        {
            switch (pending)
            {
                case 0xED:
                    _leds = (byte)(value & 0x07);
                    QueueKeyboard(KbdAck);
                    break;
                case 0xF0:
                    QueueKeyboard(KbdAck);
                    if (value == 0)
                        QueueKeyboard(_scanSet);
                    else if (value <= 3)
                        _scanSet = value;
                    break;
                default: // 0xF3 typematic rate/delay: accepted, not modelled
                    QueueKeyboard(KbdAck);
                    break;
            }
            return;
        }
        switch (value)
        {
            case 0xED: // set LEDs
            case 0xF0: // get/set scan code set
            case 0xF3: // set typematic rate
                _pendingKeyboardCommand = value;
                QueueKeyboard(KbdAck);
                break;
            case 0xEE:
                QueueKeyboard(KbdEcho);
                break;
            case 0xF2: // identify: an MF2 keyboard
                QueueKeyboard(KbdAck);
                QueueKeyboard(0xAB);
                QueueKeyboard(0x83);
                break;
            case 0xF4:
                _scanning = true;
                QueueKeyboard(KbdAck);
                break;
            case 0xF5: // disable scanning (and restore defaults)
                _scanning = false;
                QueueKeyboard(KbdAck);
                break;
            case 0xFF: // reset: pending keystrokes are lost, then ACK and the self-test result
                _keyboardQueue.Clear();
                _scanning = true;
                _scanSet = 2;
                _leds = 0;
                QueueKeyboard(KbdAck);
                QueueKeyboard(KbdSelfTestPassed);
                break;
            default:
                QueueKeyboard(KbdAck);
                break;
        }
    }

    private void QueueController(byte value)
    {
        if (!_controllerQueue.TryEnqueue(value))
            _droppedBytes++;
    }

    private void QueueKeyboard(byte value)
    {
        if (!_keyboardQueue.TryEnqueue(value))
            _droppedBytes++;
    }

    /// <summary>Loads the output buffer if it is empty: controller replies first, then keyboard bytes unless the
    /// keyboard interface is disabled.</summary>
    private void Refill()
    {
        if (_outputFull)
            return;
        if (_controllerQueue.TryDequeue(out byte value)
            || ((_ram[0] & CtrKeyboardDisabled) == 0 && _keyboardQueue.TryDequeue(out value)))
        {
            _outputByte = value;
            _outputFull = true;
        }
    }

    /// <summary>Drives IRQ 1 only when its level changes; under the lock so levels cannot be reordered.</summary>
    private void UpdateInterrupt()
    {
        bool level = _outputFull && (_ram[0] & CtrKeyboardInterrupt) != 0;
        if (level == _irqLevel)
            return;
        _irqLevel = level;
        _irq.Set(level);
    }

    public void SaveState(StateWriter writer)
    {
        lock (_lock)
        {
            writer.WriteByte(StateVersion);
            writer.WriteBytes(_ram);
            writer.WriteByte(_outputPort);
            writer.WriteBool(_systemFlag);
            writer.WriteBool(_lastWriteWasCommand);
            writer.WriteByte(_pendingCommand);
            writer.WriteByte(_pendingKeyboardCommand);
            writer.WriteBool(_scanning);
            writer.WriteByte(_scanSet);
            writer.WriteByte(_leds);
            writer.WriteBool(_outputFull);
            writer.WriteByte(_outputByte);
            _controllerQueue.Save(writer);
            _keyboardQueue.Save(writer);
        }
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        var ram = new byte[RamSize];
        reader.ReadBytes(ram);
        byte outputPort = reader.ReadByte();
        bool systemFlag = reader.ReadBool();
        bool lastWasCommand = reader.ReadBool();
        byte pendingCommand = reader.ReadByte();
        byte pendingKeyboard = reader.ReadByte();
        bool scanning = reader.ReadBool();
        byte scanSet = reader.ReadByte();
        byte leds = reader.ReadByte();
        bool outputFull = reader.ReadBool();
        byte outputByte = reader.ReadByte();
        byte[] controllerQueue = ByteQueue.Load(reader, QueueCapacity, StateId);
        byte[] keyboardQueue = ByteQueue.Load(reader, QueueCapacity, StateId);

        if (pendingCommand is not (0 or (>= 0x60 and <= 0x7F) or (>= 0xD1 and <= 0xD4)))
            throw new StateFormatException($"{StateId}: bad pending command 0x{pendingCommand:x}");
        if (pendingKeyboard is not (0 or 0xED or 0xF0 or 0xF3))
            throw new StateFormatException($"{StateId}: bad pending keyboard command 0x{pendingKeyboard:x}");
        if (scanSet is < 1 or > 3 || leds > 0x07)
            throw new StateFormatException($"{StateId}: keyboard state out of range");

        lock (_lock)
        {
            ram.CopyTo(_ram);
            _outputPort = outputPort;
            _systemFlag = systemFlag;
            _lastWriteWasCommand = lastWasCommand;
            _pendingCommand = pendingCommand;
            _pendingKeyboardCommand = pendingKeyboard;
            _scanning = scanning;
            _scanSet = scanSet;
            _leds = leds;
            _outputFull = outputFull;
            _outputByte = outputByte;
            _controllerQueue.Clear();
            foreach (byte b in controllerQueue)
                _controllerQueue.TryEnqueue(b);
            _keyboardQueue.Clear();
            foreach (byte b in keyboardQueue)
                _keyboardQueue.TryEnqueue(b);
            UpdateInterrupt();
        }
    }

    /// <summary>One of the controller's two ports as seen by the bus.</summary>
    private sealed class Port(I8042 controller, bool isCommand) : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => controller.Read(isCommand, offset, data);

        public void Write(ulong offset, ReadOnlySpan<byte> data) => controller.Write(isCommand, offset, data);
    }

    /// <summary>A fixed-capacity FIFO of bytes that never allocates after construction.</summary>
    private sealed class ByteQueue(int capacity)
    {
        private readonly byte[] _items = new byte[capacity];
        private int _head;
        private int _count;

        public int Free => _items.Length - _count;

        public bool TryEnqueue(byte value)
        {
            if (_count == _items.Length)
                return false;
            _items[(_head + _count) % _items.Length] = value;
            _count++;
            return true;
        }

        public bool TryDequeue(out byte value)
        {
            if (_count == 0)
            {
                value = 0;
                return false;
            }
            value = _items[_head];
            _head = (_head + 1) % _items.Length;
            _count--;
            return true;
        }

        public void Clear()
        {
            _head = 0;
            _count = 0;
        }

        /// <summary>Count plus a fixed-size image, so a reader checks an exact length instead of trusting one.</summary>
        public void Save(StateWriter writer)
        {
            var image = new byte[_items.Length];
            for (int i = 0; i < _count; i++)
                image[i] = _items[(_head + i) % _items.Length];
            writer.WriteByte((byte)_count);
            writer.WriteBytes(image);
        }

        /// <summary>Reads what <see cref="Save"/> wrote and returns the queued bytes in order.</summary>
        public static byte[] Load(StateReader reader, int capacity, string section)
        {
            int count = reader.ReadByte();
            var image = new byte[capacity];
            reader.ReadBytes(image);
            if (count > capacity)
                throw new StateFormatException($"{section}: queue of {count} bytes exceeds {capacity}");
            return image[..count];
        }
    }
}
