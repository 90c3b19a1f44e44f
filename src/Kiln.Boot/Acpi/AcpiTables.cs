using System.Text;
using Kiln.Memory;

namespace Kiln.Boot.Acpi;

/// <summary>The ACPI tables of a Kiln machine: RSDP -> XSDT (and RSDT) -> FADT (-> FACS, DSDT), MADT. They give the
/// guest its CPUs and IOAPIC (MADT), a power-off path through the PM1a control register (FADT + the DSDT's \_S5),
/// a fixed-feature power button (PM1 event block, SCI on GSI 9) and a reset register (port 0xCF9).</summary>
public static class AcpiTables
{
    private const byte MadtFlagPcAtCompat = 1;
    private const uint LocalApicAddress = 0xFEE0_0000;
    private const uint IoApicAddress = 0xFEC0_0000;

    public static void Write(GuestMemory memory, int cpuCount)
    {
        if (cpuCount < 1 || cpuCount > 254)
            throw new BootException($"ACPI: {cpuCount} CPUs cannot be described (1 to 254)");
        ulong next = AcpiLayout.RsdpAddress + 64; // RSDP (36 bytes) gets the first 64
        ulong Place(byte[] table)
        {
            ulong at = next;
            if (at + (ulong)table.Length > AcpiLayout.TablesEnd)
                throw new BootException("ACPI tables do not fit in the BIOS area");
            memory.Write(new GuestAddress(at), table);
            next = (at + (ulong)table.Length + 15) & ~15UL;
            return at;
        }

        ulong dsdt = Place(Dsdt());
        ulong facs = Place(Facs());
        ulong fadt = Place(Fadt(facs, dsdt));
        ulong madt = Place(Madt(cpuCount));
        ulong xsdt = Place(Xsdt([fadt, madt]));
        ulong rsdt = Place(Rsdt([fadt, madt]));
        memory.Write(new GuestAddress(AcpiLayout.RsdpAddress), Rsdp(rsdt, xsdt));
    }

    internal static byte[] Rsdp(ulong rsdt, ulong xsdt)
    {
        var r = new byte[36];
        Encoding.ASCII.GetBytes("RSD PTR ").CopyTo(r, 0);
        Encoding.ASCII.GetBytes("KILN  ").CopyTo(r, 9);
        r[15] = 2; // ACPI 2.0+: XSDT present
        BitConverter.GetBytes((uint)rsdt).CopyTo(r, 16);
        BitConverter.GetBytes(36u).CopyTo(r, 20);
        BitConverter.GetBytes(xsdt).CopyTo(r, 24);
        r[8] = AcpiTableWriter.Checksum(r.AsSpan(0, 20));
        r[32] = AcpiTableWriter.Checksum(r);
        return r;
    }

    private static byte[] Xsdt(ulong[] tables)
    {
        var w = new AcpiTableWriter("XSDT", 1);
        foreach (ulong t in tables)
            w.Put64(t);
        return w.Finish();
    }

    private static byte[] Rsdt(ulong[] tables)
    {
        var w = new AcpiTableWriter("RSDT", 1);
        foreach (ulong t in tables)
            w.Put32((uint)t);
        return w.Finish();
    }

    /// <summary>Fixed ACPI Description Table, revision 3 (244 bytes). Fixed hardware: PM1a event/control and the
    /// PM timer at I/O ports; no SMI command port, so the platform is always in ACPI mode.</summary>
    internal static byte[] Fadt(ulong facs, ulong dsdt)
    {
        var w = new AcpiTableWriter("FACP", 3);
        w.Put32((uint)facs);                                   // 36 FIRMWARE_CTRL
        w.Put32((uint)dsdt);                                   // 40 DSDT
        w.Put8(0);                                             // 44 reserved
        w.Put8(0);                                             // 45 preferred PM profile: unspecified
        w.Put16(AcpiLayout.SciIrq);                            // 46 SCI_INT
        w.Put32(0);                                            // 48 SMI_CMD: none
        w.Put8(0); w.Put8(0); w.Put8(0); w.Put8(0);            // 52 ACPI_ENABLE/DISABLE, S4BIOS_REQ, PSTATE_CNT
        w.Put32(AcpiLayout.PmBase + AcpiLayout.Pm1aEventOffset);   // 56 PM1a_EVT_BLK
        w.Put32(0);                                            // 60 PM1b_EVT_BLK
        w.Put32(AcpiLayout.PmBase + AcpiLayout.Pm1aControlOffset); // 64 PM1a_CNT_BLK
        w.Put32(0);                                            // 68 PM1b_CNT_BLK
        w.Put32(0);                                            // 72 PM2_CNT_BLK
        w.Put32(AcpiLayout.PmBase + AcpiLayout.PmTimerOffset); // 76 PM_TMR_BLK
        w.Put32(0); w.Put32(0);                                // 80 GPE0_BLK, GPE1_BLK
        w.Put8(4); w.Put8(2); w.Put8(0); w.Put8(4);            // 88 PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
        w.Put8(0); w.Put8(0); w.Put8(0); w.Put8(0);            // 92 GPE0/1 lengths, GPE1_BASE, CST_CNT
        w.Put16(0x65); w.Put16(0x3E9);                         // 96 P_LVL2/3 latencies: C2/C3 not supported
        w.Put16(0); w.Put16(0);                                // 100 FLUSH_SIZE, FLUSH_STRIDE
        w.Put8(0); w.Put8(0);                                  // 104 DUTY_OFFSET, DUTY_WIDTH
        w.Put8(0); w.Put8(0); w.Put8(0x32);                    // 106 DAY_ALRM, MON_ALRM, CENTURY (CMOS 0x32)
        w.Put16(0x0003);                                       // 109 IAPC_BOOT_ARCH: legacy devices, 8042
        w.Put8(0);                                             // 111 reserved
        const uint Wbinvd = 1 << 0, ProcC1 = 1 << 2, SleepButtonAbsent = 1 << 5;
        const uint TimerValExt = 1 << 8, ResetRegSupported = 1 << 10;
        // The power button is the fixed-feature one (PM1 PWRBTN_STS/EN, SCI): PWR_BUTTON clear means present.
        w.Put32(Wbinvd | ProcC1 | SleepButtonAbsent | TimerValExt | ResetRegSupported); // 112
        w.PutIoAddress(AcpiLayout.ResetPort, 8, 1);            // 116 RESET_REG
        w.Put8(AcpiLayout.ResetValue);                         // 128 RESET_VALUE
        w.Put16(0); w.Put8(0);                                 // 129 ARM_BOOT_ARCH, FADT minor version
        w.Put64(facs);                                         // 132 X_FIRMWARE_CTRL
        w.Put64(dsdt);                                         // 140 X_DSDT
        w.PadTo(244);                                          // X_PM blocks zero: the 32-bit fields apply
        return w.Finish();
    }

    private static byte[] Facs()
    {
        // The FACS has no standard header: signature, length, hardware signature, waking vector, global lock...
        var f = new byte[64];
        Encoding.ASCII.GetBytes("FACS").CopyTo(f, 0);
        BitConverter.GetBytes(64u).CopyTo(f, 4);
        f[32] = 1; // version
        return f;
    }

    /// <summary>The DSDT holds Name (_S5, Package () { 5, 5, 0, 0 }), which tells the OS which SLP_TYP value powers
    /// the machine off, and the PCI root bridge \_SB.PCI0; written as AML by hand so no ACPI compiler is needed.</summary>
    internal static byte[] Dsdt()
    {
        var w = new AcpiTableWriter("DSDT", 2);
        byte s5 = AcpiLayout.SleepTypeS5;
        w.Put([0x08, (byte)'_', (byte)'S', (byte)'5', (byte)'_',  // NameOp "_S5_"
               0x12, 0x08, 0x04,                                  // PackageOp, PkgLength 8, 4 elements
               0x0A, s5, 0x0A, s5, 0x00, 0x00]);                  // BytePrefix 5, BytePrefix 5, Zero, Zero
        w.Put(PciRootAml.SystemBus());
        return w.Finish();
    }

    /// <summary>Multiple APIC Description Table: one enabled local APIC per CPU (APIC id = CPU index), the IOAPIC
    /// (id = CPU count, GSIs 0-23 = ISA IRQs 0-15 identity-mapped, as KVM's default routing does), the SCI as a
    /// level-triggered active-high interrupt, and LINT1 as NMI on every CPU.</summary>
    internal static byte[] Madt(int cpuCount)
    {
        var w = new AcpiTableWriter("APIC", 3);
        w.Put32(LocalApicAddress);
        w.Put32(MadtFlagPcAtCompat);
        for (int i = 0; i < cpuCount; i++)
        {
            w.Put8(0); w.Put8(8);           // processor local APIC
            w.Put8((byte)i);                // ACPI processor UID
            w.Put8((byte)i);                // APIC id
            w.Put32(1);                     // enabled
        }
        w.Put8(1); w.Put8(12);              // I/O APIC
        w.Put8((byte)cpuCount); w.Put8(0);
        w.Put32(IoApicAddress);
        w.Put32(0);                         // global system interrupt base
        w.Put8(2); w.Put8(10);              // interrupt source override: ISA IRQ 9 (SCI) -> GSI 9, level, high
        w.Put8(0); w.Put8(AcpiLayout.SciIrq);
        w.Put32(AcpiLayout.SciIrq);
        w.Put16(0x000D);
        w.Put8(4); w.Put8(6);               // local APIC NMI: all processors, LINT1
        w.Put8(0xFF); w.Put16(0); w.Put8(1);
        return w.Finish();
    }
}
