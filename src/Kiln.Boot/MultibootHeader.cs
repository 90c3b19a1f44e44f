namespace Kiln.Boot;

/// <summary>A multiboot v1 header (Multiboot Specification 0.6.96, section 3.1): the magic on a 4-byte boundary
/// in the first 8 KiB, with flags and a checksum that makes the three words sum to zero.</summary>
internal sealed record MultibootHeader(int FileOffset, uint Flags, uint HeaderAddr, uint LoadAddr, uint LoadEndAddr,
    uint BssEndAddr, uint EntryAddr)
{
    public const uint Magic = 0x1BAD_B002;
    public const int SearchLimit = 8192;

    public const uint FlagPageAlignModules = 1 << 0;
    public const uint FlagMemoryInfo = 1 << 1;
    public const uint FlagVideoMode = 1 << 2;
    public const uint FlagAddressFields = 1 << 16;

    /// <summary>Bits 0..15 are requirements: a loader that cannot meet one must refuse the image.</summary>
    public const uint RequiredFlagsMask = 0xFFFF;
    public const uint SupportedRequiredFlags = FlagPageAlignModules | FlagMemoryInfo;

    private const int BaseSize = 12;
    private const int WithAddressFieldsSize = 32;

    public bool HasAddressFields => (Flags & FlagAddressFields) != 0;

    /// <summary>False when the header claims address fields but they do not fit in the file's first 8 KiB.</summary>
    public bool IsComplete { get; init; } = true;

    /// <summary>The first valid header in <paramref name="head"/> (the start of the file), or null.</summary>
    public static MultibootHeader? Find(ReadOnlySpan<byte> head)
    {
        int searchable = Math.Min(head.Length, SearchLimit);
        for (int offset = 0; offset + BaseSize <= searchable; offset += 4)
        {
            if (LittleEndian.U32(head, offset) != Magic)
                continue;
            uint flags = LittleEndian.U32(head, offset + 4);
            uint checksum = LittleEndian.U32(head, offset + 8);
            if (unchecked(Magic + flags + checksum) != 0)
                continue; // the magic value by coincidence, not a header
            if ((flags & FlagAddressFields) == 0)
                return new MultibootHeader(offset, flags, 0, 0, 0, 0, 0);
            if (offset + WithAddressFieldsSize > searchable)
                return new MultibootHeader(offset, flags, 0, 0, 0, 0, 0) { IsComplete = false };
            return new MultibootHeader(offset, flags,
                HeaderAddr: LittleEndian.U32(head, offset + 12),
                LoadAddr: LittleEndian.U32(head, offset + 16),
                LoadEndAddr: LittleEndian.U32(head, offset + 20),
                BssEndAddr: LittleEndian.U32(head, offset + 24),
                EntryAddr: LittleEndian.U32(head, offset + 28));
        }
        return null;
    }
}
