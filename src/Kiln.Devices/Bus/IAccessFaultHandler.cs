namespace Kiln.Devices.Bus;

/// <summary>A bus device that wants to hear when one of its handlers threw on a guest access. The bus has already
/// dropped the access (a read returned all-ones) and logged it; a device with a reset protocol (virtio:
/// DEVICE_NEEDS_RESET) then stops until the driver resets it, rather than run on in a state nobody checked.</summary>
public interface IAccessFaultHandler
{
    /// <param name="offset">The faulting access's offset in the device's range, as the handler was given it.</param>
    void OnAccessFault(ulong offset, Exception fault);
}
