using Kiln.Devices.Bus;
using Kiln.Devices.State;
using Kiln.Memory;

namespace Kiln.Devices.Legacy;

/// <summary>The MC146818 real-time clock and its 128 bytes of CMOS RAM, at ports 0x70 (index) and 0x71 (data);
/// register at <see cref="BasePort"/> with length <see cref="PortCount"/>.</summary>
/// <remarks>
/// The clock is not ticked: time registers are computed when read, from the host clock plus an offset that the guest
/// moves by setting the time. No IRQ 8 is modelled (no periodic, alarm or update interrupts); register C's
/// update-ended flag is synthesized when read, so a guest polling it still sees updates happen once a second.
/// </remarks>
public sealed class CmosRtc : IBusDevice, IStateful
{
    public const ushort BasePort = 0x70;
    public const ulong PortCount = 2;

    private const byte StateVersion = 1;
    private const int RamSize = 128;

    private const byte RegSeconds = 0x00, RegMinutes = 0x02, RegHours = 0x04, RegDayOfWeek = 0x06, RegDayOfMonth = 0x07;
    private const byte RegMonth = 0x08, RegYear = 0x09, RegA = 0x0A, RegB = 0x0B, RegC = 0x0C, RegD = 0x0D;
    private const byte RegCentury = 0x32;
    private static readonly byte[] TimeRegisters =
        [RegSeconds, RegMinutes, RegHours, RegDayOfWeek, RegDayOfMonth, RegMonth, RegYear, RegCentury];

    private const byte AUpdateInProgress = 0x80;
    private const byte DefaultA = 0x26; // 32.768 kHz time base, 1.024 kHz periodic rate
    private const byte BSet = 0x80, BPeriodicIe = 0x40, BAlarmIe = 0x20, BUpdateIe = 0x10, BSquareWave = 0x08;
    private const byte BBinary = 0x04, B24Hour = 0x02;
    private const byte DefaultB = B24Hour; // 24-hour, BCD
    private const byte CIrqFlag = 0x80, CUpdateEnded = 0x10;
    private const byte DValidRam = 0x80;

    private const ulong KiB = 1024, MiB = 1024 * KiB, SixtyFourKiB = 64 * KiB;

    private readonly Lock _lock = new();
    private readonly Func<DateTime> _clock;
    private readonly byte[] _ram = new byte[RamSize];
    private byte _index;
    // Guest time = host clock + offset, in ticks. Always within ±DateTime.MaxValue.Ticks, so sums cannot overflow.
    private long _offsetTicks;
    // Guest time (whole seconds) when register C was last read: a later second means an update cycle has ended.
    private long _lastUpdateSecond;

    private long _unexpectedAccesses;
    private long _rejectedTimeWrites;

    /// <param name="guestMemoryBytes">Guest RAM size, for the PC memory-size registers. RAM above
    /// <see cref="X86MemoryLayout.MmioHoleStart"/> is counted as lying above 4 GiB, as that layout places it.</param>
    /// <param name="utcClock">The host's UTC clock; tests pass a fixed one. Defaults to <see cref="DateTime.UtcNow"/>.</param>
    public CmosRtc(ulong guestMemoryBytes, Func<DateTime>? utcClock = null)
    {
        _clock = utcClock ?? (() => DateTime.UtcNow);
        _ram[RegA] = DefaultA;
        _ram[RegB] = DefaultB;
        _ram[RegD] = DValidRam;
        FillMemorySize(guestMemoryBytes);
        _lastUpdateSecond = GuestNow(_clock()).Ticks / TimeSpan.TicksPerSecond;
    }

    public string StateId => "cmos-rtc";

    /// <summary>Accesses of a size other than one byte or outside the two ports; reads returned all-ones.</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    /// <summary>Times the guest set a date/time that does not exist (bad BCD, month 13...); the clock kept running.</summary>
    public long RejectedTimeWrites => Interlocked.Read(ref _rejectedTimeWrites);

    /// <summary>The guest's current idea of UTC time.</summary>
    public DateTime GuestTime
    {
        get
        {
            lock (_lock)
                return GuestNow(_clock());
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
        if (offset == 0)
        {
            // The index port is write-only on the real part.
            data[0] = 0xFF;
            return;
        }
        lock (_lock)
            data[0] = ReadRegister(_index);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || offset >= PortCount)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        lock (_lock)
        {
            if (offset == 0)
                _index = (byte)(data[0] & 0x7F); // bit 7 is the NMI mask, not part of the index; NMIs are not gated here
            else
                WriteRegister(_index, data[0]);
        }
    }

    /// <summary>The chip's RESET input (machine reset): interrupt enables and flags clear; RAM and time survive,
    /// being battery-backed.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _ram[RegB] &= unchecked((byte)~(BPeriodicIe | BAlarmIe | BUpdateIe | BSquareWave));
            _ram[RegC] = 0;
        }
    }

    private byte ReadRegister(byte register)
    {
        switch (register)
        {
            case RegA:
                return (byte)(_ram[RegA] & ~AUpdateInProgress); // never mid-update: the time is computed atomically
            case RegC:
                return ReadAndClearC();
            case RegD:
                return DValidRam;
            default:
                if (IsTimeRegister(register) && !SetMode)
                    return Encode(register, GuestNow(_clock()));
                // While SET holds the clock, the time registers read back what was latched or written.
                return _ram[register];
        }
    }

    private void WriteRegister(byte register, byte value)
    {
        switch (register)
        {
            case RegA:
                _ram[RegA] = (byte)(value & ~AUpdateInProgress);
                break;
            case RegB:
                WriteB(value);
                break;
            case RegC:
            case RegD:
                break; // read-only
            default:
                if (IsTimeRegister(register) && !SetMode)
                    SetSingleField(register, value);
                else
                    _ram[register] = value;
                break;
        }
    }

    private bool SetMode => (_ram[RegB] & BSet) != 0;

    private static bool IsTimeRegister(byte register) => Array.IndexOf(TimeRegisters, register) >= 0;

    private void WriteB(byte value)
    {
        bool wasSet = SetMode;
        // Setting SET also clears UIE (MC146818 data sheet).
        if ((value & BSet) != 0)
            value &= unchecked((byte)~BUpdateIe);
        _ram[RegB] = value;
        if (!wasSet && SetMode)
        {
            // Freeze the time registers so the guest reads a consistent snapshot while it rewrites them.
            var now = GuestNow(_clock());
            foreach (byte r in TimeRegisters)
                _ram[r] = Encode(r, now);
        }
        else if (wasSet && !SetMode)
        {
            // Releasing SET starts the clock from what the guest wrote, at the start of that second.
            var host = _clock();
            if (TryDecode(_ram, out var set))
            {
                _offsetTicks = set.Ticks - host.Ticks;
                _lastUpdateSecond = set.Ticks / TimeSpan.TicksPerSecond;
            }
            else
                _rejectedTimeWrites++;
        }
    }

    /// <summary>A time register written while the clock runs: that one field changes, the rest keep running.</summary>
    private void SetSingleField(byte register, byte value)
    {
        if (register == RegDayOfWeek)
            return; // the day of the week is derived from the date, so writing it changes nothing
        var host = _clock();
        var now = GuestNow(host);
        Span<byte> regs = stackalloc byte[RamSize];
        _ram.CopyTo(regs);
        foreach (byte r in TimeRegisters)
            regs[r] = Encode(r, now);
        regs[register] = value;
        if (!TryDecode(regs, out var set))
        {
            _rejectedTimeWrites++;
            return;
        }
        long fraction = now.Ticks % TimeSpan.TicksPerSecond;
        _offsetTicks = set.Ticks + fraction - host.Ticks;
    }

    private byte ReadAndClearC()
    {
        byte c = _ram[RegC];
        if (!SetMode)
        {
            long second = GuestNow(_clock()).Ticks / TimeSpan.TicksPerSecond;
            if (second != _lastUpdateSecond)
            {
                c |= CUpdateEnded;
                _lastUpdateSecond = second;
            }
        }
        if ((c & CUpdateEnded) != 0 && (_ram[RegB] & BUpdateIe) != 0)
            c |= CIrqFlag;
        _ram[RegC] = 0;
        return c;
    }

    private DateTime GuestNow(DateTime host)
    {
        long ticks = Math.Clamp(host.Ticks + _offsetTicks, 0, DateTime.MaxValue.Ticks);
        return new DateTime(ticks, DateTimeKind.Utc);
    }

    private bool Binary => (_ram[RegB] & BBinary) != 0;

    private byte Encode(byte register, DateTime t) => register switch
    {
        RegSeconds => EncodeField(t.Second),
        RegMinutes => EncodeField(t.Minute),
        RegHours => EncodeHour(t.Hour),
        RegDayOfWeek => EncodeField((int)t.DayOfWeek + 1), // Sunday = 1
        RegDayOfMonth => EncodeField(t.Day),
        RegMonth => EncodeField(t.Month),
        RegYear => EncodeField(t.Year % 100),
        RegCentury => EncodeField(t.Year / 100),
        _ => _ram[register],
    };

    private byte EncodeField(int value) => Binary ? (byte)value : (byte)(((value / 10) << 4) | (value % 10));

    private byte EncodeHour(int hour)
    {
        if ((_ram[RegB] & B24Hour) != 0)
            return EncodeField(hour);
        // 12-hour mode: 12, 1..11 with bit 7 marking PM.
        int h12 = hour % 12 == 0 ? 12 : hour % 12;
        return (byte)(EncodeField(h12) | (hour >= 12 ? 0x80 : 0));
    }

    /// <summary>Reads a date and time from register images in the current B format; false if it names no real instant.</summary>
    private bool TryDecode(ReadOnlySpan<byte> regs, out DateTime result)
    {
        result = default;
        if (!TryDecodeField(regs[RegSeconds], out int second) || second > 59
            || !TryDecodeField(regs[RegMinutes], out int minute) || minute > 59
            || !TryDecodeHour(regs[RegHours], out int hour)
            || !TryDecodeField(regs[RegDayOfMonth], out int day) || day < 1
            || !TryDecodeField(regs[RegMonth], out int month) || month is < 1 or > 12
            || !TryDecodeField(regs[RegYear], out int yearInCentury) || yearInCentury > 99
            || !TryDecodeField(regs[RegCentury], out int century) || century > 99)
            return false;
        int year = century * 100 + yearInCentury;
        if (year < 1 || day > DateTime.DaysInMonth(year, month))
            return false;
        result = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc);
        return true;
    }

    private bool TryDecodeField(byte value, out int result)
    {
        if (Binary)
        {
            result = value;
            return true;
        }
        int high = value >> 4, low = value & 0x0F;
        result = high * 10 + low;
        return high <= 9 && low <= 9;
    }

    private bool TryDecodeHour(byte value, out int hour)
    {
        if ((_ram[RegB] & B24Hour) != 0)
            return TryDecodeField(value, out hour) && hour <= 23;
        bool pm = (value & 0x80) != 0;
        if (!TryDecodeField((byte)(value & 0x7F), out int h12) || h12 is < 1 or > 12)
        {
            hour = 0;
            return false;
        }
        hour = h12 % 12 + (pm ? 12 : 0);
        return true;
    }

    /// <summary>The memory-size bytes a PC BIOS leaves in CMOS, which bootloaders and some kernels read.</summary>
    private void FillMemorySize(ulong bytes)
    {
        // Base memory: always the full 640 KiB.
        SetWord(0x15, 640);

        // Extended memory above 1 MiB in KiB, saturating at 0xFFFF (just under 64 MiB), in both the AT
        // location (0x17) and the copy the BIOS keeps at 0x30.
        ulong extended = bytes > MiB ? Math.Min((bytes - MiB) / KiB, 0xFFFF) : 0;
        SetWord(0x17, (ushort)extended);
        SetWord(0x30, (ushort)extended);

        // RAM between 16 MiB and the 32-bit MMIO hole, in 64 KiB units.
        ulong below4G = Math.Min(bytes, X86MemoryLayout.MmioHoleStart);
        ulong above16M = below4G > 16 * MiB ? Math.Min((below4G - 16 * MiB) / SixtyFourKiB, 0xFFFF) : 0;
        SetWord(0x34, (ushort)above16M);

        // RAM relocated above 4 GiB, in 64 KiB units, three bytes.
        ulong above4G = bytes > X86MemoryLayout.MmioHoleStart
            ? Math.Min((bytes - X86MemoryLayout.MmioHoleStart) / SixtyFourKiB, 0xFF_FFFF)
            : 0;
        _ram[0x5B] = (byte)above4G;
        _ram[0x5C] = (byte)(above4G >> 8);
        _ram[0x5D] = (byte)(above4G >> 16);

        // The standard checksum over 0x10-0x2D (big-endian at 0x2E), for firmware or tools that verify it.
        int sum = 0;
        for (int i = 0x10; i <= 0x2D; i++)
            sum += _ram[i];
        _ram[0x2E] = (byte)(sum >> 8);
        _ram[0x2F] = (byte)sum;
    }

    private void SetWord(int register, ushort value)
    {
        _ram[register] = (byte)value;
        _ram[register + 1] = (byte)(value >> 8);
    }

    public void SaveState(StateWriter writer)
    {
        lock (_lock)
        {
            writer.WriteByte(StateVersion);
            writer.WriteBytes(_ram);
            writer.WriteByte(_index);
            writer.WriteInt64(_offsetTicks);
            writer.WriteInt64(_lastUpdateSecond);
        }
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        var ram = new byte[RamSize];
        reader.ReadBytes(ram);
        byte index = reader.ReadByte();
        long offset = reader.ReadInt64();
        long lastUpdate = reader.ReadInt64();
        if (index >= RamSize)
            throw new StateFormatException($"{StateId}: index 0x{index:x} out of range");
        if (offset < -DateTime.MaxValue.Ticks || offset > DateTime.MaxValue.Ticks)
            throw new StateFormatException($"{StateId}: clock offset {offset} out of range");
        lock (_lock)
        {
            ram.CopyTo(_ram);
            _index = index;
            _offsetTicks = offset;
            _lastUpdateSecond = lastUpdate;
        }
    }
}
