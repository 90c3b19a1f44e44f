namespace Kiln.Vmm.Migration;

/// <summary>A live migration failed: a refused handshake, a broken stream, a guest that would not converge. The
/// message is one line for the user; the source keeps running when this is thrown (except for the subclass
/// <see cref="MigrationOutcomeUnknownException"/>).</summary>
public class MigrationException(string message, Exception? inner = null) : KilnException(message, inner);
