namespace Kiln.Storage.Qcow2;

/// <summary>An image whose on-disk structures are malformed, inconsistent or use a feature Kiln does not implement.
/// The message names the file and the problem in one line.</summary>
public sealed class ImageFormatException(string message, Exception? inner = null) : IOException(message, inner);
