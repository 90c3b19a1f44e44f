using System.Diagnostics;
using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>ACPI fixed-hardware power management: PM1a status (offset 0) and enable (2), PM1a control (4), and the
/// 3.579545 MHz PM timer (8). Writing SLP_EN with the S5 sleep type to the control register powers the machine
/// off; that is how an ACPI guest's `poweroff` ends. SCI_EN reads as set: the platform is always in ACPI mode.
///
/// The fixed-feature power button: <see cref="PressPowerButton"/> sets PWRBTN_STS, and while a status bit and its
/// enable bit are both set the SCI (a level-triggered line, GSI 9) is asserted, until the guest's handler clears
/// the status by writing one to it. An ACPI OS sets PWRBTN_EN when its button driver loads, so the enable bit also
/// tells whether anyone is listening.</summary>
public sealed class AcpiPmDevice : IBusDevice, IStateful
{
    public const ulong Length = 12;
    public const long TimerHz = 3_579_545;
    private const byte StateVersion = 1;
    private const ushort SciEnable = 1, SleepEnable = 1 << 13;

    /// <summary>PWRBTN_STS in PM1 status, PWRBTN_EN in PM1 enable.</summary>
    public const ushort PowerButton = 1 << 8;

    /// <summary>The status/enable bits Kiln implements: timer overflow is never raised, only the power button.</summary>
    private const ushort ImplementedEvents = PowerButton;
    private const int SleepTypeShift = 10;

    /// <summary>PM1 status, enable and control; what lies above (reserved bytes, the timer) ignores writes.</summary>
    private const int WritableLength = 6;

    private readonly IMachineControl _machine;
    private readonly IInterruptLine? _sci;
    private readonly int _s5SleepType;
    private readonly Lock _lock = new();
    private readonly long _timerOrigin = Stopwatch.GetTimestamp();
    private ushort _status, _enable, _control = SciEnable;
    private long _unexpectedAccesses;
    private bool _sciLevel;

    /// <param name="sci">The SCI line (level-triggered); null for a machine without one (no power button events).</param>
    public AcpiPmDevice(IMachineControl machine, int s5SleepType, IInterruptLine? sci = null)
    {
        _machine = machine;
        _s5SleepType = s5SleepType;
        _sci = sci;
    }

    /// <summary>Whether the guest has enabled power button events (PWRBTN_EN): an ACPI OS listens for presses.</summary>
    public bool PowerButtonEnabled
    {
        get
        {
            lock (_lock)
                return (_enable & PowerButton) != 0;
        }
    }

    /// <summary>Presses the power button: sets PWRBTN_STS, which raises the SCI if the guest enabled the event.
    /// Returns whether the guest had enabled it (if not, the press is only latched in the status register).</summary>
    public bool PressPowerButton()
    {
        lock (_lock)
        {
            _status |= PowerButton;
            UpdateSci();
            return (_enable & PowerButton) != 0;
        }
    }

    /// <summary>Drives the SCI from status AND enable (only on a change); called under _lock after either changes.</summary>
    private void UpdateSci()
    {
        bool level = (_status & _enable & ImplementedEvents) != 0;
        if (level == _sciLevel)
            return;
        _sciLevel = level;
        _sci?.Set(level);
    }

    public string StateId => "acpi-pm";

    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    public void Read(ulong offset, Span<byte> data)
    {
        if (!InRange(offset, data.Length))
        {
            data.Fill(0xFF);
            return;
        }
        Span<byte> file = stackalloc byte[(int)Length];
        lock (_lock)
        {
            BitConverter.TryWriteBytes(file[0..], _status);
            BitConverter.TryWriteBytes(file[2..], _enable);
            BitConverter.TryWriteBytes(file[4..], (ushort)(_control | SciEnable));
        }
        BitConverter.TryWriteBytes(file[8..], TimerValue());
        file.Slice((int)offset, data.Length).CopyTo(data);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        // Only status, enable and control (bytes 0-5) are writable: bytes 6-7 are reserved and the timer is
        // read-only, so a write there is dropped, and one that starts below 6 keeps only its bytes below 6.
        if (!InRange(offset, data.Length) || offset >= WritableLength)
            return;
        Span<byte> file = stackalloc byte[WritableLength];
        bool powerOff;
        lock (_lock)
        {
            BitConverter.TryWriteBytes(file[0..], (ushort)0);
            BitConverter.TryWriteBytes(file[2..], _enable);
            BitConverter.TryWriteBytes(file[4..], _control);
            int end = Math.Min((int)offset + data.Length, WritableLength);
            data[..(end - (int)offset)].CopyTo(file[(int)offset..]);
            ushort clear = BitConverter.ToUInt16(file[0..]);
            if (offset < 2)
                _status &= (ushort)~clear; // write-one-to-clear
            _enable = BitConverter.ToUInt16(file[2..]);
            UpdateSci();
            ushort control = BitConverter.ToUInt16(file[4..]);
            powerOff = (control & SleepEnable) != 0 && ((control >> SleepTypeShift) & 7) == _s5SleepType;
            _control = (ushort)(control & ~SleepEnable); // SLP_EN is write-only
        }
        if (powerOff)
            _machine.RequestPowerOff("ACPI S5 (PM1a control)");
    }

    private bool InRange(ulong offset, int length)
    {
        if (length is 1 or 2 or 4 && offset < Length && (ulong)length <= Length - offset)
            return true;
        Interlocked.Increment(ref _unexpectedAccesses);
        return false;
    }

    /// <summary>A free-running 32-bit counter at the ACPI timer frequency (TMR_VAL_EXT is set in the FADT).</summary>
    private uint TimerValue()
    {
        long ticks = Stopwatch.GetTimestamp() - _timerOrigin;
        return (uint)(Math.BigMul(ticks, TimerHz) / Stopwatch.Frequency);
    }

    public void SaveState(StateWriter writer)
    {
        lock (_lock)
        {
            writer.WriteByte(StateVersion);
            writer.WriteUInt16(_status);
            writer.WriteUInt16(_enable);
            writer.WriteUInt16(_control);
        }
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        ushort status = reader.ReadUInt16(), enable = reader.ReadUInt16(), control = reader.ReadUInt16();
        lock (_lock)
        {
            _status = status;
            _enable = enable;
            _control = control;
            UpdateSci();
        }
    }
}
