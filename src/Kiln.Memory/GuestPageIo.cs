using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kiln.Interop;

namespace Kiln.Memory;

/// <summary>Vectored I/O of whole guest pages between RAM and a descriptor (a migration socket): one writev/readv
/// for many pages, no copy through a user-space buffer. The iovecs point into guest RAM, so building them stays
/// here, where the RAM mapping lives.</summary>
public static unsafe class GuestPageIo
{
    /// <summary>Writes the pages at <paramref name="addresses"/> (each a page of RAM, checked) to <paramref name="fd"/>
    /// in order. The guest may be running: a page that changes meanwhile is the caller's to send again.</summary>
    public static void Write(GuestMemory memory, int fd, ReadOnlySpan<ulong> addresses, int pageSize, int timeoutMs)
    {
        Span<VectorIo.IoVec> entries = addresses.Length <= 256 ? stackalloc VectorIo.IoVec[addresses.Length]
            : new VectorIo.IoVec[addresses.Length];
        VectorIo.WriteAll(fd, Entries(memory, addresses, pageSize, entries), timeoutMs);
    }

    /// <summary>Fills the pages at <paramref name="addresses"/> (each a page of RAM, checked) from <paramref name="fd"/>.</summary>
    public static void Read(GuestMemory memory, int fd, ReadOnlySpan<ulong> addresses, int pageSize, int timeoutMs)
    {
        Span<VectorIo.IoVec> entries = addresses.Length <= 256 ? stackalloc VectorIo.IoVec[addresses.Length]
            : new VectorIo.IoVec[addresses.Length];
        VectorIo.ReadAll(fd, Entries(memory, addresses, pageSize, entries), timeoutMs);
    }

    private static Span<VectorIo.IoVec> Entries(GuestMemory memory, ReadOnlySpan<ulong> addresses, int pageSize,
        Span<VectorIo.IoVec> entries)
    {
        for (int i = 0; i < addresses.Length; i++)
        {
            var page = memory.GetSpan(new GuestAddress(addresses[i]), pageSize);
            // SAFETY: GetSpan checked that [address, address + pageSize) lies inside one RAM region; guest RAM is an
            // mmap'd region, not managed memory, so the pointer needs no pinning and stays valid while the caller
            // holds the memory (a machine lease), and the kernel reads or writes exactly pageSize bytes there.
            entries[i] = new VectorIo.IoVec(Unsafe.AsPointer(ref MemoryMarshal.GetReference(page)), (nuint)pageSize);
        }
        return entries;
    }
}
