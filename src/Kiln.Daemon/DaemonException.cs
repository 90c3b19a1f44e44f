namespace Kiln.Daemon;

/// <summary>A request the daemon refuses: <see cref="Status"/> is the HTTP status (404 unknown domain, 409 wrong
/// state or duplicate, 400 bad input, 504 a timeout), the message one line for the user.</summary>
public sealed class DaemonException(int status, string message, string? field = null) : KilnException(message)
{
    public int Status { get; } = status;
    public string? Field { get; } = field;

    public override int ExitCode => Status == 400 ? 2 : 1;
}
