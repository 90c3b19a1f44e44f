using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>System Control Port A at port 0x92 (register at <see cref="Port"/>, length <see cref="PortCount"/>):
/// bit 0 is the "fast reset" (a 0→1 transition resets the machine), bit 1 the fast A20 gate. All bits read back as
/// written. KVM does not mask A20, so the gate is only remembered (power-on value: enabled, which is the truth).</summary>
/// <remarks>Bit 0 stays set after it fired, as on the real part, until <see cref="Reset"/> clears it: the machine's
/// reset path must call <see cref="Reset"/> or a second fast reset will not trigger.</remarks>
public sealed class SystemControlPortA(IMachineControl machine) : IBusDevice, IStateful
{
    public const ushort Port = 0x92;
    public const ulong PortCount = 1;

    private const byte StateVersion = 1;
    private const byte FastReset = 0x01, A20Gate = 0x02;

    private readonly Lock _lock = new();
    private byte _value = A20Gate;
    private long _unexpectedAccesses;

    public string StateId => "port92";

    /// <summary>Accesses wider than a byte or outside the port; dropped (reads gave all-ones).</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    public bool A20Enabled
    {
        get
        {
            lock (_lock)
                return (_value & A20Gate) != 0;
        }
    }

    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || offset != 0)
        {
            data.Fill(0xFF);
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        lock (_lock)
            data[0] = _value;
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || offset != 0)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        bool reset;
        lock (_lock)
        {
            reset = (data[0] & FastReset) != 0 && (_value & FastReset) == 0;
            _value = data[0];
        }
        if (reset)
            machine.RequestReset("port 0x92");
    }

    /// <summary>Machine reset: the fast-reset bit clears; the A20 gate keeps its setting.</summary>
    public void Reset()
    {
        lock (_lock)
            _value &= unchecked((byte)~FastReset);
    }

    public void SaveState(StateWriter writer)
    {
        lock (_lock)
        {
            writer.WriteByte(StateVersion);
            writer.WriteByte(_value);
        }
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        byte value = reader.ReadByte();
        lock (_lock)
            _value = value;
    }
}
