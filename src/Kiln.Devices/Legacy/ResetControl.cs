using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>The chipset's Reset Control Register at port 0xCF9 (register at <see cref="Port"/>, length
/// <see cref="PortCount"/>). Writing bit 2 (RST_CPU) resets the machine; bit 1 (SYS_RST) selects a hard rather than a
/// soft reset and bit 3 (FULL_RST) a full one. Under KVM every reset is a full machine reset, so those two bits are
/// only remembered and read back. This is the path Linux takes with <c>reboot=pci</c> (and as a fallback).</summary>
/// <remarks>0xCF9 lies inside the PCI configuration-mechanism range 0xCF8-0xCFF. If a PCI host bridge is later
/// registered there, it must forward single-byte accesses to 0xCF9 here, since the bus does not allow overlaps.</remarks>
public sealed class ResetControl(IMachineControl machine) : IBusDevice, IStateful
{
    public const ushort Port = 0xCF9;
    public const ulong PortCount = 1;

    private const byte StateVersion = 1;
    private const byte SystemReset = 0x02, ResetCpu = 0x04, FullReset = 0x08;
    private const byte KeptBits = SystemReset | FullReset; // RST_CPU is an action, not a setting

    private readonly Lock _lock = new();
    private byte _value;
    private long _unexpectedAccesses;

    public string StateId => "reset-control@cf9";

    /// <summary>Accesses wider than a byte or outside the port; dropped (reads gave all-ones).</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

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
        lock (_lock)
            _value = (byte)(data[0] & KeptBits);
        if ((data[0] & ResetCpu) != 0)
            machine.RequestReset("port 0xcf9");
    }

    /// <summary>Power-on state (machine reset).</summary>
    public void Reset()
    {
        lock (_lock)
            _value = 0;
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
        if ((value & ~KeptBits) != 0)
            throw new StateFormatException($"{StateId}: bad register value 0x{value:x}");
        lock (_lock)
            _value = value;
    }
}
