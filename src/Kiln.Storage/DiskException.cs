namespace Kiln.Storage;

/// <summary>A disk backend error: a range outside the disk, a write to a read-only disk, an unusable file.</summary>
public sealed class DiskException(string message, Exception? inner = null) : IOException(message, inner);
