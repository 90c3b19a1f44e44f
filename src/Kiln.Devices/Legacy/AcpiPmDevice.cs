using System.Diagnostics;
using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>ACPI fixed-hardware power management: PM1a status (offset 0) and enable (2), PM1a control (4), and the
/// 3.579545 MHz PM timer (8). Writing SLP_EN with the S5 sleep type to the control register powers the machine
/// off; that is how an ACPI guest's `poweroff` ends. SCI_EN reads as set: the platform is always in ACPI mode.</summary>
public sealed class AcpiPmDevice : IBusDevice, IStateful
{
    public const ulong Length = 12;
    public const long TimerHz = 3_579_545;
    private const byte StateVersion = 1;
    private const ushort SciEnable = 1, SleepEnable = 1 << 13;
    private const int SleepTypeShift = 10;

    private readonly IMachineControl _machine;
    private readonly int _s5SleepType;
    private readonly Lock _lock = new();
    private readonly long _timerOrigin = Stopwatch.GetTimestamp();
    private ushort _status, _enable, _control = SciEnable;
    private long _unexpectedAccesses;

    public AcpiPmDevice(IMachineControl machine, int s5SleepType)
    {
        _machine = machine;
        _s5SleepType = s5SleepType;
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
        if (!InRange(offset, data.Length) || offset >= 8)
            return; // the timer is read-only
        Span<byte> file = stackalloc byte[6];
        bool powerOff;
        lock (_lock)
        {
            BitConverter.TryWriteBytes(file[0..], (ushort)0);
            BitConverter.TryWriteBytes(file[2..], _enable);
            BitConverter.TryWriteBytes(file[4..], _control);
            int end = Math.Min((int)offset + data.Length, 6);
            data[..(end - (int)offset)].CopyTo(file[(int)offset..]);
            ushort clear = BitConverter.ToUInt16(file[0..]);
            if (offset < 2)
                _status &= (ushort)~clear; // write-one-to-clear
            _enable = BitConverter.ToUInt16(file[2..]);
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
        }
    }
}
