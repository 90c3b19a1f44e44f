namespace Kiln.Virtio.Net;

/// <summary>A network backend could not be set up; the message is one line naming the interface.</summary>
public sealed class NetBackendException(string message, Exception? inner = null) : KilnException(message, inner);
