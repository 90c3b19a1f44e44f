namespace Kiln.Contracts.Snapshot;

/// <summary>The snapshot section framing over a byte stream (e.g. a migration connection): header, then payload,
/// each checked with its CRC on read. Sections on a stream are never RAM-aligned: <see cref="SnapshotFormat"/>'s
/// 4 KiB alignment is for files only.</summary>
public static class SnapshotSectionStream
{
    public static void Write(Stream stream, SnapshotSectionType type, ReadOnlySpan<byte> payload, ulong param = 0)
    {
        Span<byte> header = stackalloc byte[SnapshotSectionHeader.Size];
        new SnapshotSectionHeader(type, (ulong)payload.Length, param, Crc32C.Compute(payload)).Write(header);
        stream.Write(header);
        stream.Write(payload);
    }

    /// <summary>Reads one section; a bad header, a payload over <paramref name="maxLength"/>, an early end of stream
    /// or a CRC mismatch is a <see cref="SnapshotException"/>.</summary>
    public static (SnapshotSectionHeader Header, byte[] Payload) Read(Stream stream, long maxLength = SnapshotFormat.MaxSmallSectionBytes)
    {
        var headerBytes = new byte[SnapshotSectionHeader.Size];
        ReadExactly(stream, headerBytes);
        var header = SnapshotSectionHeader.Read(headerBytes, -1);
        if (header.Length > (ulong)maxLength)
            throw new SnapshotException($"{header.Type} section of {header.Length:#,0} bytes exceeds the limit of {maxLength:#,0}");
        var payload = new byte[header.Length];
        ReadExactly(stream, payload);
        if (Crc32C.Compute(payload) != header.Crc)
            throw new SnapshotException($"the {header.Type} section fails its CRC");
        return (header, payload);
    }

    private static void ReadExactly(Stream stream, byte[] buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new SnapshotException("stream ended inside a section", e);
        }
    }
}
