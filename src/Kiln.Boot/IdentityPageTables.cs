using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Page tables that identity-map the first 4 GiB with 2 MiB pages, as the Linux 64-bit boot protocol
/// requires (kernel, zero page, command line and initrd must be mapped; all of them are below 4 GiB).</summary>
internal static class IdentityPageTables
{
    private const ulong Present = 1 << 0;
    private const ulong Writable = 1 << 1;
    private const ulong PageSize = 1 << 7; // in a page directory entry: this maps a 2 MiB page
    private const ulong TwoMiB = 2 << 20;
    private const int EntriesPerTable = 512;
    private const int PageDirectories = 4; // 4 x 1 GiB

    /// <summary>Writes PML4, PDPT and the four page directories; returns the CR3 value.</summary>
    public static ulong Write(GuestMemory memory)
    {
        // PML4, PDPT and the page directories are consecutive pages, so one buffer covers them all.
        var tables = new byte[(2 + PageDirectories) * (int)Align.Page];
        Span<byte> pml4 = tables.AsSpan(0, (int)Align.Page);
        Span<byte> pdpt = tables.AsSpan((int)Align.Page, (int)Align.Page);
        LittleEndian.Put64(pml4, 0, BootLayout.PdptAddress | Present | Writable);
        for (int d = 0; d < PageDirectories; d++)
        {
            ulong directory = BootLayout.PageDirectoriesAddress + (ulong)d * Align.Page;
            LittleEndian.Put64(pdpt, d * 8, directory | Present | Writable);
            Span<byte> pd = tables.AsSpan((int)(directory - BootLayout.Pml4Address), (int)Align.Page);
            for (int e = 0; e < EntriesPerTable; e++)
            {
                ulong frame = ((ulong)d * EntriesPerTable + (ulong)e) * TwoMiB;
                LittleEndian.Put64(pd, e * 8, frame | Present | Writable | PageSize);
            }
        }
        memory.Write(new GuestAddress(BootLayout.Pml4Address), tables);
        return BootLayout.Pml4Address;
    }
}
