namespace Kiln.Memory;

/// <summary>An access fell outside guest RAM (or a layout was impossible).</summary>
public sealed class GuestMemoryException(string message) : KilnException(message);
