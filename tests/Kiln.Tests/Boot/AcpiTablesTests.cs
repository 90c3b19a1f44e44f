using System.Diagnostics;
using System.Text;
using Kiln.Boot.Acpi;
using Kiln.Memory;

namespace Kiln.Tests.Boot;

/// <summary>The ACPI tables: structure and checksums checked here, and each table disassembled by the real ACPICA
/// disassembler (iasl, from acpica-tools) to prove an OS-grade parser accepts it.</summary>
public sealed class AcpiTablesTests
{
    private static GuestMemory Written(int cpus)
    {
        var memory = GuestMemory.Create([(new GuestAddress(0), 2UL << 20)]);
        AcpiTables.Write(memory, cpus);
        return memory;
    }

    private static byte[] Bytes(GuestMemory m, ulong address, int length)
    {
        var b = new byte[length];
        m.Read(new GuestAddress(address), b);
        return b;
    }

    private static byte[] Table(GuestMemory m, ulong address) =>
        Bytes(m, address, (int)m.Read<uint>(new GuestAddress(address + 4)));

    private static Dictionary<string, byte[]> Tables(GuestMemory m)
    {
        var rsdp = Bytes(m, AcpiLayout.RsdpAddress, 36);
        var xsdt = Table(m, BitConverter.ToUInt64(rsdp, 24));
        var tables = new Dictionary<string, byte[]> { ["XSDT"] = xsdt, ["RSDT"] = Table(m, BitConverter.ToUInt32(rsdp, 16)) };
        for (int i = 36; i < xsdt.Length; i += 8)
        {
            var t = Table(m, BitConverter.ToUInt64(xsdt, i));
            tables[Encoding.ASCII.GetString(t, 0, 4)] = t;
        }
        tables["DSDT"] = Table(m, BitConverter.ToUInt64(tables["FACP"], 140));
        return tables;
    }

    private static byte Sum(ReadOnlySpan<byte> data)
    {
        byte s = 0;
        foreach (byte b in data)
            s += b;
        return s;
    }

    [Fact]
    public void RsdpIsFoundWhereLinuxScansAndBothChecksumsHold()
    {
        using var m = Written(1);
        var rsdp = Bytes(m, AcpiLayout.RsdpAddress, 36);
        Assert.Equal("RSD PTR ", Encoding.ASCII.GetString(rsdp, 0, 8));
        Assert.InRange(AcpiLayout.RsdpAddress, 0xE0000UL, 0xFFFF0UL);
        Assert.Equal(0UL, AcpiLayout.RsdpAddress % 16);
        Assert.Equal(0, Sum(rsdp.AsSpan(0, 20)));
        Assert.Equal(0, Sum(rsdp));
        Assert.Equal(2, rsdp[15]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void EveryTableHasAValidChecksum(int cpus)
    {
        using var m = Written(cpus);
        var tables = Tables(m);
        Assert.Equal(["APIC", "DSDT", "FACP", "RSDT", "XSDT"], tables.Keys.Order());
        Assert.All(tables.Values, t => Assert.Equal(0, Sum(t)));
    }

    [Fact]
    public void FadtPointsAtThePmBlockAndTheResetRegister()
    {
        using var m = Written(1);
        var fadt = Tables(m)["FACP"];
        Assert.Equal(244, fadt.Length);
        Assert.Equal((uint)AcpiLayout.PmBase, BitConverter.ToUInt32(fadt, 56));
        Assert.Equal((uint)AcpiLayout.PmBase + 4, BitConverter.ToUInt32(fadt, 64));
        Assert.Equal((uint)AcpiLayout.PmBase + 8, BitConverter.ToUInt32(fadt, 76));
        Assert.Equal((byte)2, fadt[89]);
        Assert.Equal((ushort)9, BitConverter.ToUInt16(fadt, 46));
        Assert.Equal(0xCF9UL, BitConverter.ToUInt64(fadt, 120));
        Assert.Equal((byte)6, fadt[128]);
        uint flags = BitConverter.ToUInt32(fadt, 112);
        Assert.Equal(0u, flags & (1 << 4)); // PWR_BUTTON clear: a fixed-feature power button is present
        Assert.Equal(1u << 5, flags & (1 << 5)); // SLP_BUTTON set: no sleep button
    }

    [Fact]
    public void DsdtDeclaresTheS5SleepType()
    {
        using var m = Written(1);
        var dsdt = Tables(m)["DSDT"];
        int at = dsdt.AsSpan().IndexOf("_S5_"u8);
        Assert.True(at > 0);
        Assert.Equal((byte)AcpiLayout.SleepTypeS5, dsdt[at + 8]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void MadtListsEachCpuAndTheIoApic(int cpus)
    {
        using var m = Written(cpus);
        var madt = Tables(m)["APIC"];
        var types = new List<(byte Type, byte[] Body)>();
        for (int i = 44; i < madt.Length; i += madt[i + 1])
            types.Add((madt[i], madt[i..(i + madt[i + 1])]));
        var lapics = types.Where(t => t.Type == 0).ToList();
        Assert.Equal(cpus, lapics.Count);
        Assert.Equal(Enumerable.Range(0, cpus).Select(i => (byte)i), lapics.Select(l => l.Body[3]));
        var ioapic = Assert.Single(types, t => t.Type == 1);
        Assert.Equal((byte)cpus, ioapic.Body[2]);
        Assert.Equal(0xFEC00000u, BitConverter.ToUInt32(ioapic.Body, 4));
    }

    [Fact]
    public void TooManyCpusAreRefused()
    {
        using var memory = GuestMemory.Create([(new GuestAddress(0), 2UL << 20)]);
        Assert.Throws<Kiln.Boot.BootException>(() => AcpiTables.Write(memory, 255));
    }

    [Fact]
    public void AcpicaDisassemblesEveryTableWithoutErrors()
    {
        Assert.True(File.Exists("/usr/bin/iasl"), "iasl is missing: install acpica-tools (setup.sh does)");
        using var m = Written(2);
        string dir = Directory.CreateTempSubdirectory("kiln-acpi").FullName;
        try
        {
            foreach (var (name, bytes) in Tables(m))
            {
                string file = Path.Combine(dir, name.ToLowerInvariant() + ".dat");
                File.WriteAllBytes(file, bytes);
                var psi = new ProcessStartInfo("iasl", ["-d", file]) { RedirectStandardOutput = true, RedirectStandardError = true };
                using var p = Process.Start(psi)!;
                string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.True(p.ExitCode == 0, $"iasl -d {name}: {output}");
                string dsl = File.ReadAllText(Path.ChangeExtension(file, ".dsl"));
                Assert.DoesNotContain("Invalid", dsl);
                Assert.DoesNotContain("Error", dsl);
                if (name == "DSDT")
                {
                    Assert.Contains("_S5", dsl);
                    Assert.Contains("Device (PCI0)", dsl);
                    Assert.Contains("EisaId (\"PNP0A03\")", dsl);
                    Assert.Contains("0xEFFFFFFF", dsl);
                    Assert.Contains("0x0CF8", dsl);
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void PciRootWindowIsTheHostBridgeWindow()
    {
        // The DSDT's _CRS must offer the guest exactly the window the VMM decodes BARs in.
        Assert.Equal(Kiln.Virtio.Pci.PciHostBridge.DefaultWindowBase, PciRootAml.DefaultWindowBase);
        Assert.Equal(Kiln.Virtio.Pci.PciHostBridge.DefaultWindowSize, PciRootAml.DefaultWindowSize);
    }

    [Theory]
    [InlineData(0x3E, new byte[] { 0x3F })]
    [InlineData(0x3F, new byte[] { 0x41, 0x04 })]
    [InlineData(0xFF0, new byte[] { 0x42, 0xFF })]
    [InlineData(0x1000, new byte[] { 0x83, 0x00, 0x01 })]
    public void PkgLengthUsesAsFewBytesAsItCan(int body, byte[] expected) => Assert.Equal(expected, Aml.PkgLength(body));
}
