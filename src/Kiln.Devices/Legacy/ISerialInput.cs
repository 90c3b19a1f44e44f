namespace Kiln.Devices.Legacy;

/// <summary>A console device that takes the user's keystrokes (the UART, virtio-console). EnqueueInput returns how
/// many bytes fit; InputSpaceAvailable fires once room frees up after a refusal, so the console can wait.</summary>
public interface ISerialInput
{
    int EnqueueInput(ReadOnlySpan<byte> bytes);

    event Action? InputSpaceAvailable;
}
