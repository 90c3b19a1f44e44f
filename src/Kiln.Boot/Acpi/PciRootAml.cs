namespace Kiln.Boot.Acpi;

/// <summary>\_SB.PCI0: the PCI host bridge as ACPI describes it. With ACPI on, Linux (and other OSes) find PCI
/// buses only through such a PNP0A03 device, not by probing: without it a guest sees no virtio-pci device at all.
/// Its _CRS hands the guest bus 0, the configuration ports 0xCF8-0xCFF, the rest of the I/O space and the BAR
/// window; its _PRT routes INTx of each slot, pin A to the GSI the VMM wires (<see cref="PciInterruptRouting"/>).</summary>
internal static class PciRootAml
{
    public const ulong DefaultWindowBase = 0xE000_0000, DefaultWindowSize = 0x1000_0000;
    private const int Slots = 32;

    public static byte[] SystemBus(ulong windowBase = DefaultWindowBase, ulong windowSize = DefaultWindowSize)
    {
        // Scope (\_SB) { Device (PCI0) { ... } }
        byte[] device = Aml.Device("PCI0",
        [
            Aml.Name("_HID", Aml.EisaId("PNP0A03")),
            Aml.Name("_UID", Aml.Integer(0)),
            Aml.Name("_SEG", Aml.Integer(0)),
            Aml.Name("_BBN", Aml.Integer(0)),
            Aml.Name("_ADR", Aml.Integer(0)),
            Aml.Name("_CRS", Aml.Buffer(Resources(windowBase, windowSize))),
            Aml.Name("_PRT", Aml.Package(Routing())),
        ]);
        byte[] body = [(byte)'\\', .. Aml.NameSeg("_SB"), .. device];
        return [0x10, .. Aml.PkgLength(body.Length), .. body]; // ScopeOp
    }

    private static byte[][] Routing()
    {
        var entries = new List<byte[]>();
        for (int slot = 1; slot < Slots; slot++)
        {
            uint gsi = PciInterruptRouting.GsiForSlot(slot);
            entries.Add(Aml.Package(
            [
                Aml.Integer(((ulong)slot << 16) | 0xFFFF), // any function of the slot
                Aml.Integer(0),                            // pin INTA
                Aml.Integer(0),                            // no link device: the next value is a GSI
                Aml.Integer(gsi),
            ]));
        }
        return [.. entries];
    }

    /// <summary>ACPI resource descriptors (6.4 "Resource Data Types").</summary>
    private static byte[] Resources(ulong windowBase, ulong windowSize)
    {
        const byte Producer = 0x00, MinMaxFixed = 0x0C;
        var r = new List<byte>();
        // Word address space, bus numbers 0-0.
        r.AddRange([0x88, 0x0D, 0x00, 0x02, Producer | MinMaxFixed, 0x00]);
        r.AddRange(Words(0, 0, 0, 0, 1));
        // The configuration mechanism's own ports, consumed by the bridge: IO (Decode16, 0xCF8, 0xCF8, 1, 8).
        r.AddRange([0x47, 0x01, 0xF8, 0x0C, 0xF8, 0x0C, 0x01, 0x08]);
        // I/O space passed down, either side of the configuration ports.
        r.AddRange([0x88, 0x0D, 0x00, 0x01, Producer | MinMaxFixed, 0x03]);
        r.AddRange(Words(0, 0x0000, 0x0CF7, 0, 0x0CF8));
        r.AddRange([0x88, 0x0D, 0x00, 0x01, Producer | MinMaxFixed, 0x03]);
        r.AddRange(Words(0, 0x0D00, 0xFFFF, 0, 0xF300));
        // DWord memory: the BAR window, non-cacheable, read/write.
        r.AddRange([0x87, 0x17, 0x00, 0x00, Producer | MinMaxFixed, 0x01]);
        foreach (ulong v in new ulong[] { 0, windowBase, windowBase + windowSize - 1, 0, windowSize })
            r.AddRange(BitConverter.GetBytes((uint)v));
        r.AddRange([0x79, 0x00]); // end tag (checksum 0: "treat as correct")
        return [.. r];
    }

    private static IEnumerable<byte> Words(params ushort[] values) => values.SelectMany(BitConverter.GetBytes);
}
