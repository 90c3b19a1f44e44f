namespace Kiln.Devices.Bus;

/// <summary>A device on the port-I/O or MMIO bus. Offsets are relative to the range the device was registered at.
/// Called on vCPU threads: implementations lock their own state and must not block.</summary>
public interface IBusDevice
{
    void Read(ulong offset, Span<byte> data);

    void Write(ulong offset, ReadOnlySpan<byte> data);
}
