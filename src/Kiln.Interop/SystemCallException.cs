using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>A libc call failed; carries the call's name and errno so callers can phrase one clear line.</summary>
public class SystemCallException : KilnException
{
    public SystemCallException(string call, int errno, string? context = null)
        : base($"{call}{(context is null ? "" : " " + context)}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Call = call;
        Errno = errno;
    }

    public string Call { get; }
    public int Errno { get; }

    /// <summary>Throws for the errno of the last P/Invoke; kept out of line so hot callers stay small.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void ThrowLast(string call, string? context = null) =>
        throw new SystemCallException(call, Marshal.GetLastPInvokeError(), context);
}
