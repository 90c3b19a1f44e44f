using System.Text;
using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>The Intel MultiProcessor Specification 1.4 tables through which Linux finds the application
/// processors and the IOAPIC when there is no ACPI: an MP floating pointer at <see cref="BootLayout.MpTableAddress"/>
/// (the last KiB of base memory, which Linux scans) followed by the configuration table.</summary>
internal static class MpTable
{
    public const uint LocalApicAddress = 0xFEE0_0000;
    public const uint IoApicAddress = 0xFEC0_0000;
    public const int IsaIrqCount = 16;

    private const int FloatingPointerSize = 16;
    private const int HeaderSize = 44;
    private const int ProcessorEntrySize = 20;
    private const int SmallEntrySize = 8; // bus, IOAPIC, I/O interrupt and local interrupt entries

    private const byte ProcessorEntry = 0, BusEntry = 1, IoApicEntry = 2, IoInterruptEntry = 3, LocalInterruptEntry = 4;
    private const byte InterruptInt = 0, InterruptNmi = 1, InterruptExtInt = 3;
    private const byte LocalApicVersion = 0x14; // what KVM's in-kernel LAPIC reports; 0 would mean an 82489DX
    private const byte IoApicVersion = 0x11;    // what KVM's in-kernel IOAPIC reports
    private const byte AllLocalApics = 0xFF;
    private const uint CpuSignatureFamily6 = 6 << 8; // stepping 0, model 0, family 6
    private const uint CpuFeaturesFpuApic = (1 << 0) | (1 << 9); // CPUID.1:EDX FPU and APIC
    private const byte IsaBusId = 0;

    /// <summary>The most CPUs whose tables fit in the reserved KiB [0x9FC00, 0xA0000).</summary>
    public static int MaxCpus => ((int)(BootLayout.BaseMemoryEnd - BootLayout.MpTableAddress) - FixedSize) / ProcessorEntrySize;

    private static int FixedSize =>
        FloatingPointerSize + HeaderSize + SmallEntrySize * (1 + 1 + IsaIrqCount + 2);

    public static int SizeFor(int cpuCount) => FixedSize + ProcessorEntrySize * cpuCount;

    /// <summary>The IOAPIC input an ISA IRQ arrives on. Identity: with KVM's default GSI routing (no
    /// KVM_SET_GSI_ROUTING), GSI n drives IOAPIC pin n and the in-kernel PIT raises GSI 0. A VMM that installs
    /// QEMU-style routing (GSI 0 to pin 2) must change this to match.</summary>
    public static byte IoApicPinFor(int isaIrq) => (byte)isaIrq;

    /// <summary>Writes both structures for CPUs with APIC ids 0..cpuCount-1; the IOAPIC gets id cpuCount.</summary>
    public static void Write(GuestMemory memory, int cpuCount)
    {
        if (cpuCount < 1 || cpuCount > MaxCpus)
            throw new BootException($"{cpuCount} CPUs: the MP table supports 1 to {MaxCpus}");
        var table = new byte[SizeFor(cpuCount)];
        uint configAddress = (uint)BootLayout.MpTableAddress + FloatingPointerSize;
        WriteFloatingPointer(table.AsSpan(0, FloatingPointerSize), configAddress);
        WriteConfiguration(table.AsSpan(FloatingPointerSize), cpuCount);
        memory.Write(new GuestAddress(BootLayout.MpTableAddress), table);
    }

    private static void WriteFloatingPointer(Span<byte> p, uint configAddress)
    {
        Encoding.ASCII.GetBytes("_MP_", p);
        LittleEndian.Put32(p, 4, configAddress);
        p[8] = 1;  // length in 16-byte units
        p[9] = 4;  // spec revision 1.4
        // p[11] feature byte 1 = 0: a configuration table is present (no default configuration).
        // p[12] bit 7 (IMCRP) = 0: virtual wire mode, there is no IMCR to switch.
        p[10] = LittleEndian.ChecksumFor(p);
    }

    private static void WriteConfiguration(Span<byte> t, int cpuCount)
    {
        int offset = HeaderSize;
        for (int cpu = 0; cpu < cpuCount; cpu++)
        {
            var e = t.Slice(offset, ProcessorEntrySize);
            e[0] = ProcessorEntry;
            e[1] = (byte)cpu; // local APIC id
            e[2] = LocalApicVersion;
            e[3] = (byte)(cpu == 0 ? 0b11 : 0b01); // enabled, plus bootstrap processor on CPU 0
            LittleEndian.Put32(e, 4, CpuSignatureFamily6);
            LittleEndian.Put32(e, 8, CpuFeaturesFpuApic);
            offset += ProcessorEntrySize;
        }

        var bus = t.Slice(offset, SmallEntrySize);
        bus[0] = BusEntry;
        bus[1] = IsaBusId;
        Encoding.ASCII.GetBytes("ISA   ", bus[2..]);
        offset += SmallEntrySize;

        byte ioApicId = (byte)cpuCount; // the first id after the CPUs' local APICs
        var ioApic = t.Slice(offset, SmallEntrySize);
        ioApic[0] = IoApicEntry;
        ioApic[1] = ioApicId;
        ioApic[2] = IoApicVersion;
        ioApic[3] = 1; // enabled
        LittleEndian.Put32(ioApic, 4, IoApicAddress);
        offset += SmallEntrySize;

        for (int irq = 0; irq < IsaIrqCount; irq++)
        {
            // Flags 0: polarity and trigger mode conform to the bus (ISA: active high, edge).
            WriteInterruptEntry(t.Slice(offset, SmallEntrySize), IoInterruptEntry, InterruptInt, (byte)irq, ioApicId,
                IoApicPinFor(irq));
            offset += SmallEntrySize;
        }

        // Every local APIC's LINT0 takes the 8259's ExtINT (virtual wire) and LINT1 the NMI.
        WriteInterruptEntry(t.Slice(offset, SmallEntrySize), LocalInterruptEntry, InterruptExtInt, 0, AllLocalApics, 0);
        offset += SmallEntrySize;
        WriteInterruptEntry(t.Slice(offset, SmallEntrySize), LocalInterruptEntry, InterruptNmi, 0, AllLocalApics, 1);
        offset += SmallEntrySize;

        int entryCount = cpuCount + 2 + IsaIrqCount + 2;
        Encoding.ASCII.GetBytes("PCMP", t);
        LittleEndian.Put16(t, 4, (ushort)offset); // base table length
        t[6] = 4; // spec revision 1.4
        Encoding.ASCII.GetBytes("KILN    ", t[8..]);
        Encoding.ASCII.GetBytes("KILN VM     ", t[16..]);
        LittleEndian.Put16(t, 34, (ushort)entryCount);
        LittleEndian.Put32(t, 36, LocalApicAddress);
        t[7] = LittleEndian.ChecksumFor(t[..offset]);
    }

    private static void WriteInterruptEntry(Span<byte> e, byte entryType, byte interruptType, byte sourceIrq,
        byte destinationId, byte destinationPin)
    {
        e[0] = entryType;
        e[1] = interruptType;
        // e[2..4] flags = 0: conforming polarity and trigger mode
        e[4] = IsaBusId;
        e[5] = sourceIrq;
        e[6] = destinationId;
        e[7] = destinationPin;
    }
}
