using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>termios.h: puts a tty into raw mode and restores it. The struct is handled as opaque bytes
/// (glibc's struct termios is 60 bytes on x86-64); only cfmakeraw touches its fields.</summary>
public static unsafe partial class Terminal
{
    private const int TermiosSize = 64;
    private const int TCSANOW = 0;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcgetattr(int fd, byte* termios);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcsetattr(int fd, int action, byte* termios);

    [LibraryImport("libc")]
    private static partial void cfmakeraw(byte* termios);

    public static bool IsTerminal(int fd) => Libc.isatty(fd) == 1;

    /// <summary>Switches fd to raw mode; returns the previous settings to hand to <see cref="Restore"/>.</summary>
    public static byte[] MakeRaw(int fd)
    {
        var saved = new byte[TermiosSize];
        var raw = new byte[TermiosSize];
        // SAFETY: tcgetattr/tcsetattr use one struct termios, and both buffers are TermiosSize (>= sizeof(struct termios)).
        fixed (byte* s = saved)
        fixed (byte* r = raw)
        {
            if (tcgetattr(fd, s) != 0)
                SystemCallException.ThrowLast("tcgetattr");
            Buffer.MemoryCopy(s, r, TermiosSize, TermiosSize);
            cfmakeraw(r);
            if (tcsetattr(fd, TCSANOW, r) != 0)
                SystemCallException.ThrowLast("tcsetattr");
        }
        return saved;
    }

    public static void Restore(int fd, byte[] saved)
    {
        // SAFETY: tcsetattr reads one struct termios from a TermiosSize buffer.
        fixed (byte* s = saved)
            _ = tcsetattr(fd, TCSANOW, s);
    }
}
