namespace Kiln.Storage;

/// <summary>A virtual disk's contents: a byte-addressed store of <see cref="Capacity"/> bytes. Implementations are
/// called from one device worker thread at a time but must be safe to call from any thread. Offsets and lengths are
/// validated by the caller against <see cref="Capacity"/>; implementations still refuse out-of-range accesses with a
/// <see cref="DiskException"/>. Host I/O failures surface as <see cref="IOException"/> (or a subclass).</summary>
public interface IDiskBackend : IDisposable
{
    /// <summary>The disk's size in bytes.</summary>
    ulong Capacity { get; }

    /// <summary>True when writes, discards and write-zeroes are refused.</summary>
    bool IsReadOnly { get; }

    /// <summary>Fills <paramref name="destination"/> from [offset, offset+length); bytes past the end of a short file read as zero.</summary>
    void Read(ulong offset, Span<byte> destination);

    void Write(ulong offset, ReadOnlySpan<byte> source);

    /// <summary>Makes every completed write durable (fsync).</summary>
    void Flush();

    /// <summary>Tells the backend the range is no longer needed; its contents become unspecified (raw: zero).</summary>
    void Discard(ulong offset, ulong length);

    /// <summary>Makes the range read as zero; <paramref name="mayUnmap"/> allows deallocating it.</summary>
    void WriteZeroes(ulong offset, ulong length, bool mayUnmap);
}
