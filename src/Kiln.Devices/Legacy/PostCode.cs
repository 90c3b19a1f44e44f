using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>The POST-code port 0x80 (register at <see cref="Port"/>, length <see cref="PortCount"/>). Firmware writes
/// progress codes here and Linux writes junk to it as an I/O delay, often, so writes are absorbed without a lock or
/// a log line and are never counted as unhandled. The last byte written reads back (as on a POST card).</summary>
public sealed class PostCode : IBusDevice, IStateful
{
    public const ushort Port = 0x80;
    public const ulong PortCount = 1;

    private const byte StateVersion = 1;

    private int _lastValue;
    private long _writes;
    private long _unexpectedAccesses;

    public string StateId => "post-code";

    /// <summary>The last byte written.</summary>
    public byte LastValue => (byte)Volatile.Read(ref _lastValue);

    /// <summary>How many writes arrived (each I/O delay is one).</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Reads wider than a byte, empty writes, or accesses outside the port.</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || offset != 0)
        {
            data.Fill(0xFF);
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        data[0] = LastValue;
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty || offset != 0)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        // Any width is absorbed (some code uses outw); the byte at 0x80 is the code.
        Volatile.Write(ref _lastValue, data[0]);
        Interlocked.Increment(ref _writes);
    }

    public void SaveState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        writer.WriteByte(LastValue);
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        Volatile.Write(ref _lastValue, reader.ReadByte());
    }
}
