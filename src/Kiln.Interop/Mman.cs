using System.Runtime.InteropServices;

namespace Kiln.Interop;

/// <summary>sys/mman.h: anonymous and file mappings for guest RAM and the kvm_run page.</summary>
public static unsafe partial class Mman
{
    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MADV_DONTNEED = 4;
    public const int MADV_HUGEPAGE = 14;
    public const int MADV_DONTDUMP = 16;

    // SAFETY: MAP_FAILED, only ever compared with mmap's result, never dereferenced.
    private static readonly void* MapFailed = (void*)-1;

    [LibraryImport("libc", SetLastError = true)]
    private static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(void* addr, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(void* addr, nuint length, int advice);

    public static void* Map(nuint length, int prot, int flags, int fd = -1, long offset = 0)
    {
        void* p = mmap(null, length, prot, flags, fd, offset);
        if (p == MapFailed)
            SystemCallException.ThrowLast("mmap", $"of {length} bytes");
        return p;
    }

    public static void Unmap(void* addr, nuint length)
    {
        if (munmap(addr, length) != 0)
            SystemCallException.ThrowLast("munmap");
    }

    public static void Advise(void* addr, nuint length, int advice)
    {
        if (madvise(addr, length, advice) != 0)
            SystemCallException.ThrowLast("madvise");
    }
}
