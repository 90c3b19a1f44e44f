namespace Kiln.GuestKit;

/// <summary>The guest kit could not be built; the message is one line for the user (with a log path if there is
/// one).</summary>
public sealed class GuestKitException(string message) : KilnException(message);
