namespace Kiln.Devices;

/// <summary>What a platform device may ask of the machine: a reset (i8042 0xFE, port 0xCF9, port 0x92) or an exit
/// with a status (the debug-exit port). Implementations return at once; the machine acts on its control thread.</summary>
public interface IMachineControl
{
    void RequestReset(string reason);

    /// <summary>An orderly power-off (ACPI sleep state S5, a power-off port).</summary>
    void RequestPowerOff(string reason);

    void RequestExit(int exitCode, string reason);
}
