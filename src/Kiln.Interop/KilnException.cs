namespace Kiln;

/// <summary>The base of every error Kiln reports to a user: its message is one line that says what went wrong and
/// with what (a file, a field, a device). Each layer derives its own type; front ends catch this one type and print
/// the message (the stack trace only with --debug). <see cref="ExitCode"/> is the CLI's status for it: 2 for a usage
/// error (the user typed something Kiln does not understand), 1 for a failure.</summary>
public abstract class KilnException : Exception
{
    protected KilnException(string message, Exception? inner = null) : base(message, inner)
    {
    }

    public virtual int ExitCode => 1;
}
