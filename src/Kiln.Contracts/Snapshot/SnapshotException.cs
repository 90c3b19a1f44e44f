namespace Kiln.Contracts.Snapshot;

/// <summary>A snapshot file that cannot be used: not a snapshot, another format version, truncated, corrupt, or one
/// that does not fit this host. The message is one line meant for the user.</summary>
public sealed class SnapshotException(string message, Exception? inner = null) : KilnException(message, inner);
