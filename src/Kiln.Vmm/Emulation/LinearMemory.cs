namespace Kiln.Vmm.Emulation;

/// <summary>Operand access by linear address: walks the guest page tables page by page (an operand may cross a
/// page boundary), checks present/writable/user as the CPU would, and reads or plans writes of guest RAM.
/// A not-present or protection-violating page raises #PF with CR2 in the guest; a page that maps to something
/// other than RAM (MMIO) is not emulated.</summary>
internal sealed class LinearMemory(EmulationContext context)
{
    private const ulong PageSize = 4096;

    public void Read(ulong linear, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong address = Wrap(linear + (ulong)done);
            int chunk = ChunkLength(address, destination.Length - done);
            ulong physical = TranslateChecked(address, write: false);
            if (!context.State.TryReadPhysical(physical, destination.Slice(done, chunk)))
                throw new NotEmulatedException($"operand at linear 0x{address:x} is guest-physical 0x{physical:x}, outside RAM");
            done += chunk;
        }
    }

    public byte[] Read(ulong linear, int length)
    {
        var data = new byte[length];
        Read(linear, data);
        return data;
    }

    public ulong ReadUInt64(ulong linear) => BitConverter.ToUInt64(Read(linear, 8));

    /// <summary>Checks now that every byte may be written, and records the write for commit.</summary>
    public void Write(ulong linear, ReadOnlySpan<byte> source)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong address = Wrap(linear + (ulong)done);
            int chunk = ChunkLength(address, source.Length - done);
            ulong physical = TranslateChecked(address, write: true);
            var probe = new byte[chunk];
            if (!context.State.TryReadPhysical(physical, probe))
                throw new NotEmulatedException($"operand at linear 0x{address:x} is guest-physical 0x{physical:x}, outside RAM");
            context.PlanWrite(physical, source.Slice(done, chunk).ToArray());
            done += chunk;
        }
    }

    private ulong Wrap(ulong address) => context.LongMode64 ? address : address & 0xFFFF_FFFF;

    private static int ChunkLength(ulong address, int remaining) =>
        (int)Math.Min((ulong)remaining, PageSize - (address & (PageSize - 1)));

    private ulong TranslateChecked(ulong linear, bool write)
    {
        var t = context.State.Translate(linear);
        bool user = context.Cpl == 3;
        // Supervisor writes ignore R/W only when CR0.WP is clear. SMAP/SMEP and protection keys are not modelled.
        bool writeProtected = write && !t.Writable && (user || (context.Sregs.Cr0 & (1UL << 16)) != 0);
        if (!t.Valid || writeProtected || (user && !t.User))
        {
            uint error = (t.Valid ? 1u : 0u) | (write ? 2u : 0u) | (user ? 4u : 0u);
            throw new GuestFaultException(new GuestException(GuestException.PageFault, error, linear));
        }
        return t.Physical;
    }
}
