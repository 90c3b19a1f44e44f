using Kiln.Interop;

namespace Kiln.Memory;

/// <summary>One contiguous run of guest RAM backed by an anonymous host mapping, or by a private (copy-on-write)
/// mapping of a file (a snapshot's RAM, read lazily as the guest touches it). The host pointer stays private:
/// callers get bounds-checked spans.</summary>
public sealed unsafe class GuestRegion : IDisposable
{
    private byte* _host;

    internal GuestRegion(GuestAddress start, ulong size)
    {
        CheckSize(size);
        Start = start;
        Size = size;
        // NORESERVE: guest RAM is committed page by page as the guest touches it, which keeps the VMM's RSS
        // proportional to what the guest uses.
        // SAFETY: the mapping is `size` bytes; every access goes through Slice/Span, which check offsets against Size; unmapped on Dispose.
        _host = (byte*)Mman.Map((nuint)size, Mman.PROT_READ | Mman.PROT_WRITE,
            Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE);
    }

    /// <summary>A region whose initial contents are [fileOffset, fileOffset+size) of the open file
    /// <paramref name="fd"/>. MAP_PRIVATE: the guest's writes stay in this process (copy-on-write), the file is never
    /// changed, and pages are read from it only when first touched. Holes in a sparse file read as zero. The mapping
    /// keeps its own reference to the file, so the caller may close <paramref name="fd"/> afterwards.</summary>
    internal GuestRegion(GuestAddress start, ulong size, int fd, long fileOffset)
    {
        CheckSize(size);
        if (fileOffset < 0 || fileOffset % 4096 != 0)
            throw new GuestMemoryException($"file offset {fileOffset} of region {start} is not 4 KiB aligned");
        Start = start;
        Size = size;
        // SAFETY: a private file mapping of `size` bytes; accesses are bounds-checked as for anonymous RAM; unmapped on Dispose.
        _host = (byte*)Mman.Map((nuint)size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_NORESERVE,
            fd, fileOffset);
        IsFileBacked = true;
    }

    private static void CheckSize(ulong size)
    {
        if (size == 0 || size % 4096 != 0)
            throw new GuestMemoryException($"region size {size} is not a positive multiple of 4 KiB");
    }

    /// <summary>True when the region's pages come from a file until the guest writes them.</summary>
    public bool IsFileBacked { get; }

    public GuestAddress Start { get; }
    public ulong Size { get; }
    public GuestAddress End => Start + Size;

    /// <summary>True when [address, address+length) lies inside this region; written so it cannot overflow.</summary>
    public bool Contains(GuestAddress address, ulong length)
    {
        if (address < Start)
            return false;
        ulong offset = address.Value - Start.Value;
        return offset < Size && length <= Size - offset;
    }

    /// <summary>A span over [address, address+length); the caller has checked <see cref="Contains"/>.</summary>
    internal Span<byte> Slice(GuestAddress address, int length)
    {
        ObjectDisposedException.ThrowIf(_host == null, this);
        return new Span<byte>(_host + (address.Value - Start.Value), length);
    }

    /// <summary>For KVM_SET_USER_MEMORY_REGION only: the host address backing this region.</summary>
    internal nint HostAddress => (nint)_host;

    /// <summary>Gives pages back to the host (they read as zero afterwards).</summary>
    internal void Discard(ulong offset, ulong length) => Mman.Advise(_host + offset, (nuint)length, Mman.MADV_DONTNEED);

    public void Dispose()
    {
        if (_host == null)
            return;
        Mman.Unmap(_host, (nuint)Size);
        _host = null;
    }
}
