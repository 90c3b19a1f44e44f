namespace Kiln.Devices.Bus;

/// <summary>Two devices claim the same ports or MMIO addresses (a user-placed device on a fixed one's range).</summary>
public sealed class BusConflictException(string message) : KilnException(message);
