using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>A one-byte read/write register on a single port (ports 0x92 and 0xCF9): access checking, locking, the
/// unexpected-access counter and save/restore live here; a subclass says what a write does.</summary>
public abstract class ByteRegisterPort(byte initialValue) : IBusDevice, IStateful
{
    private const byte StateVersion = 1;
    private readonly Lock _lock = new();
    private byte _value = initialValue;
    private long _unexpectedAccesses;

    public abstract string StateId { get; }

    /// <summary>Accesses wider than a byte or outside the port; dropped (reads gave all-ones).</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    protected byte Value
    {
        get
        {
            lock (_lock)
                return _value;
        }
    }

    /// <summary>The value to keep after the guest writes <paramref name="written"/> over <paramref name="old"/>, and
    /// whether <see cref="OnTriggered"/> must run (outside the lock) afterwards.</summary>
    protected abstract byte OnWrite(byte old, byte written, out bool triggered);

    protected abstract void OnTriggered();

    /// <summary>Whether a restored value is one the register can hold.</summary>
    protected virtual bool IsValidValue(byte value) => true;

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
        bool triggered;
        lock (_lock)
            _value = OnWrite(_value, data[0], out triggered);
        if (triggered)
            OnTriggered();
    }

    /// <summary>Applies a machine-reset transformation to the value.</summary>
    protected void Update(Func<byte, byte> change)
    {
        lock (_lock)
            _value = change(_value);
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
        if (!IsValidValue(value))
            throw new StateFormatException($"{StateId}: bad register value 0x{value:x}");
        lock (_lock)
            _value = value;
    }
}
