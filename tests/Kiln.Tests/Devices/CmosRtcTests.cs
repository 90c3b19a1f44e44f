using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using static Kiln.Tests.Devices.Port;

namespace Kiln.Tests.Devices;

public sealed class CmosRtcTests
{
    private const ulong MiB = 1024 * 1024, GiB = 1024 * MiB;

    // A Thursday in a leap year, in the afternoon (exercises PM in 12-hour mode).
    private DateTime _now = new(2024, 2, 29, 13, 45, 7, 250, DateTimeKind.Utc);

    private CmosRtc NewRtc(ulong memory = 512 * MiB) => new(memory, () => _now);

    private static byte Cmos(CmosRtc rtc, byte register)
    {
        Out(rtc, 0, register);
        return In(rtc, 1);
    }

    private static void SetCmos(CmosRtc rtc, byte register, byte value)
    {
        Out(rtc, 0, register);
        Out(rtc, 1, value);
    }

    [Fact]
    public void DefaultsAreBcd24HourWithValidTime()
    {
        var rtc = NewRtc();
        Assert.Equal(0x26, Cmos(rtc, 0x0A));
        Assert.Equal(0x02, Cmos(rtc, 0x0B));
        Assert.Equal(0x80, Cmos(rtc, 0x0D));
    }

    [Fact]
    public void FixedClockReadsAsBcd()
    {
        var rtc = NewRtc();
        Assert.Equal(0x07, Cmos(rtc, 0x00));
        Assert.Equal(0x45, Cmos(rtc, 0x02));
        Assert.Equal(0x13, Cmos(rtc, 0x04));
        Assert.Equal(0x05, Cmos(rtc, 0x06)); // Thursday, Sunday = 1
        Assert.Equal(0x29, Cmos(rtc, 0x07));
        Assert.Equal(0x02, Cmos(rtc, 0x08));
        Assert.Equal(0x24, Cmos(rtc, 0x09));
        Assert.Equal(0x20, Cmos(rtc, 0x32));
    }

    [Fact]
    public void BinaryModeAndTwelveHourMode()
    {
        var rtc = NewRtc();
        SetCmos(rtc, 0x0B, 0x06); // binary, 24h
        Assert.Equal(7, Cmos(rtc, 0x00));
        Assert.Equal(45, Cmos(rtc, 0x02));
        Assert.Equal(13, Cmos(rtc, 0x04));
        Assert.Equal(29, Cmos(rtc, 0x07));
        Assert.Equal(24, Cmos(rtc, 0x09));
        Assert.Equal(20, Cmos(rtc, 0x32));

        SetCmos(rtc, 0x0B, 0x04); // binary, 12h: 1 PM
        Assert.Equal(0x81, Cmos(rtc, 0x04));
        SetCmos(rtc, 0x0B, 0x00); // BCD, 12h
        Assert.Equal(0x81, Cmos(rtc, 0x04));
        _now = new DateTime(2024, 3, 1, 0, 30, 0, DateTimeKind.Utc);
        Assert.Equal(0x12, Cmos(rtc, 0x04)); // 12 AM
        _now = new DateTime(2024, 3, 1, 12, 30, 0, DateTimeKind.Utc);
        Assert.Equal(0x92, Cmos(rtc, 0x04)); // 12 PM
    }

    [Fact]
    public void TimeFollowsTheHostClock()
    {
        var rtc = NewRtc();
        _now = _now.AddSeconds(70);
        Assert.Equal(0x17, Cmos(rtc, 0x00));
        Assert.Equal(0x46, Cmos(rtc, 0x02));
    }

    [Fact]
    public void GuestSetTimeKeepsRunningFromWhatItSet()
    {
        var rtc = NewRtc();
        SetCmos(rtc, 0x0B, 0x82); // SET: clock frozen for the guest
        _now = _now.AddSeconds(5);
        Assert.Equal(0x07, Cmos(rtc, 0x00)); // still the latched value
        SetCmos(rtc, 0x00, 0x30);
        SetCmos(rtc, 0x02, 0x59);
        SetCmos(rtc, 0x04, 0x23);
        SetCmos(rtc, 0x07, 0x31);
        SetCmos(rtc, 0x08, 0x12);
        SetCmos(rtc, 0x09, 0x99);
        SetCmos(rtc, 0x32, 0x19);
        SetCmos(rtc, 0x0B, 0x02); // release SET
        Assert.Equal(new DateTime(1999, 12, 31, 23, 59, 30, DateTimeKind.Utc), rtc.GuestTime);

        _now = _now.AddSeconds(45);
        Assert.Equal(0x15, Cmos(rtc, 0x00));
        Assert.Equal(0x00, Cmos(rtc, 0x02));
        Assert.Equal(0x00, Cmos(rtc, 0x04));
        Assert.Equal(0x01, Cmos(rtc, 0x07));
        Assert.Equal(0x01, Cmos(rtc, 0x08));
        Assert.Equal(0x00, Cmos(rtc, 0x09));
        Assert.Equal(0x20, Cmos(rtc, 0x32));
        Assert.Equal(0x07, Cmos(rtc, 0x06)); // 2000-01-01 was a Saturday
    }

    [Fact]
    public void ImpossibleTimeIsRejectedAndClockKeepsRunning()
    {
        var rtc = NewRtc();
        SetCmos(rtc, 0x0B, 0x82);
        SetCmos(rtc, 0x08, 0x13); // month 13
        SetCmos(rtc, 0x0B, 0x02);
        Assert.Equal(1, rtc.RejectedTimeWrites);
        Assert.Equal(0x02, Cmos(rtc, 0x08));
        SetCmos(rtc, 0x00, 0xFA); // not BCD, written while running
        Assert.Equal(2, rtc.RejectedTimeWrites);
        Assert.Equal(0x07, Cmos(rtc, 0x00));
    }

    [Fact]
    public void SingleFieldWriteWhileRunningMovesOnlyThatField()
    {
        var rtc = NewRtc();
        SetCmos(rtc, 0x02, 0x10); // minutes := 10
        Assert.Equal(0x10, Cmos(rtc, 0x02));
        Assert.Equal(0x13, Cmos(rtc, 0x04));
        Assert.Equal(0x07, Cmos(rtc, 0x00));
    }

    [Fact]
    public void MemorySizeRegistersFor512MiB()
    {
        var rtc = NewRtc(512 * MiB);
        Assert.Equal(0x80, Cmos(rtc, 0x15)); // 640 KiB
        Assert.Equal(0x02, Cmos(rtc, 0x16));
        Assert.Equal(0xFF, Cmos(rtc, 0x17)); // extended memory saturates at 0xFFFF KiB
        Assert.Equal(0xFF, Cmos(rtc, 0x18));
        Assert.Equal(0xFF, Cmos(rtc, 0x30));
        Assert.Equal(0xFF, Cmos(rtc, 0x31));
        Assert.Equal(0x00, Cmos(rtc, 0x34)); // (512 - 16) MiB / 64 KiB = 0x1F00
        Assert.Equal(0x1F, Cmos(rtc, 0x35));
        Assert.Equal(0x00, Cmos(rtc, 0x5B));
        Assert.Equal(0x00, Cmos(rtc, 0x5C));
        Assert.Equal(0x00, Cmos(rtc, 0x5D));
    }

    [Fact]
    public void MemorySizeRegistersFor6GiB()
    {
        var rtc = NewRtc(6 * GiB);
        Assert.Equal(0xFF, Cmos(rtc, 0x17));
        Assert.Equal(0xFF, Cmos(rtc, 0x18));
        // 3 GiB below the MMIO hole: (3 GiB - 16 MiB) / 64 KiB = 0xBF00.
        Assert.Equal(0x00, Cmos(rtc, 0x34));
        Assert.Equal(0xBF, Cmos(rtc, 0x35));
        // The other 3 GiB above 4 GiB: 3 GiB / 64 KiB = 0x00C000.
        Assert.Equal(0x00, Cmos(rtc, 0x5B));
        Assert.Equal(0xC0, Cmos(rtc, 0x5C));
        Assert.Equal(0x00, Cmos(rtc, 0x5D));
    }

    [Fact]
    public void MemorySizeRegistersForSmallGuest()
    {
        var rtc = NewRtc(32 * MiB);
        Assert.Equal(0x00, Cmos(rtc, 0x17)); // 31 MiB = 0x7C00 KiB
        Assert.Equal(0x7C, Cmos(rtc, 0x18));
        Assert.Equal(0x00, Cmos(rtc, 0x34)); // 16 MiB = 0x0100 units
        Assert.Equal(0x01, Cmos(rtc, 0x35));
    }

    [Fact]
    public void RegisterCClearsOnRead()
    {
        var rtc = NewRtc();
        Assert.Equal(0x00, Cmos(rtc, 0x0C));
        _now = _now.AddSeconds(1);
        Assert.Equal(0x10, Cmos(rtc, 0x0C)); // an update cycle ended since the last read
        Assert.Equal(0x00, Cmos(rtc, 0x0C));

        SetCmos(rtc, 0x0B, 0x12); // UIE
        _now = _now.AddSeconds(1);
        Assert.Equal(0x90, Cmos(rtc, 0x0C)); // IRQF too
        Assert.Equal(0x00, Cmos(rtc, 0x0C));
    }

    [Fact]
    public void IndexIgnoresNmiBitAndRamIsReadWrite()
    {
        var rtc = NewRtc();
        SetCmos(rtc, 0x80 | 0x40, 0xAB);
        Assert.Equal(0xAB, Cmos(rtc, 0x40));
        Assert.Equal(0xFF, In(rtc, 0)); // the index port is write-only
        SetCmos(rtc, 0x0D, 0x00);       // read-only
        Assert.Equal(0x80, Cmos(rtc, 0x0D));
        SetCmos(rtc, 0x0A, 0xA6);       // UIP is read-only
        Assert.Equal(0x26, Cmos(rtc, 0x0A));
    }

    [Fact]
    public void StateRoundTrip()
    {
        var rtc = NewRtc(6 * GiB);
        SetCmos(rtc, 0x40, 0x5A);
        SetCmos(rtc, 0x0B, 0x86);
        SetCmos(rtc, 0x09, 28); // keeps 29 February valid
        SetCmos(rtc, 0x0B, 0x06);
        Assert.Equal(0, rtc.RejectedTimeWrites);
        Out(rtc, 0, 0x09);
        byte[] blob = Save(rtc);

        var copy = NewRtc(64 * MiB);
        Restore(copy, blob);
        Assert.Equal(blob, Save(copy));
        Assert.Equal(rtc.GuestTime, copy.GuestTime);
        Assert.Equal(28, In(copy, 1)); // the index survived, and the guest-set year with it
        for (byte r = 0; r < 128; r++)
            Assert.Equal(Cmos(rtc, r), Cmos(copy, r));
    }

    [Fact]
    public void RestoreRefusesBadState()
    {
        var rtc = NewRtc();
        byte[] blob = Save(rtc);
        Assert.Throws<StateFormatException>(() => Restore(NewRtc(), blob[..^3]));
        byte[] wrongVersion = [.. blob];
        wrongVersion[0] = 2;
        Assert.Throws<StateFormatException>(() => Restore(NewRtc(), wrongVersion));
        byte[] badIndex = [.. blob];
        badIndex[1 + 4 + 128] = 0x80;
        Assert.Throws<StateFormatException>(() => Restore(NewRtc(), badIndex));
    }

    [Fact]
    public void ExtremeOffsetsAndClocksDoNotThrow()
    {
        var rtc = new CmosRtc(512 * MiB, () => DateTime.MaxValue);
        SetCmos(rtc, 0x0B, 0x86);
        SetCmos(rtc, 0x32, 0);
        SetCmos(rtc, 0x09, 1);
        SetCmos(rtc, 0x08, 1);
        SetCmos(rtc, 0x07, 1);
        SetCmos(rtc, 0x0B, 0x06); // year 1 while the host says 9999: a huge negative offset
        for (byte r = 0; r < 0x0E; r++)
            Cmos(rtc, r);
        Assert.Equal(1, rtc.GuestTime.Year);
    }
}
