namespace Kiln.Virtio;

/// <summary>The driver broke the virtio protocol (a bad descriptor, ring index or buffer layout). The device answers by
/// setting DEVICE_NEEDS_RESET; this never escapes a device.</summary>
public sealed class VirtioProtocolException(string message) : KilnException(message);
