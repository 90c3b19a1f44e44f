namespace Kiln.Devices.Legacy;

/// <summary>Where a UART's transmitted bytes go (a console, a log file, a socket).
/// <see cref="Write"/> is called on a vCPU thread while the UART holds its lock, once per byte the guest writes to
/// THR, so it must be cheap and must never block: buffer and drain elsewhere.</summary>
public interface ISerialOutput
{
    void Write(byte b);
}
