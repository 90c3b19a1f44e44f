using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Interop;

/// <summary>lseek(SEEK_DATA) (unistd.h): where a sparse file's next data lies, so a copy can skip its holes without
/// reading them (reading a hole still costs the kernel a zeroed page-cache page per 4 KiB). Moves the descriptor's
/// file position: use it only on handles whose I/O is positional (pread/pwrite).</summary>
public static partial class FileExtents
{
    private const int SeekData = 3;
    private const int ENXIO = 6;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    /// <summary>The offset of the first data byte at or after <paramref name="offset"/>; long.MaxValue when only a
    /// hole follows (or offset is past the end); null when the file system cannot tell (treat all as data).</summary>
    public static long? NextData(SafeFileHandle handle, long offset)
    {
        long at = lseek(handle, offset, SeekData);
        if (at >= 0)
            return at;
        return Marshal.GetLastPInvokeError() == ENXIO ? long.MaxValue : null;
    }
}
