using Kiln.Contracts.Spec;
using Kiln.Daemon;

namespace Kiln.Tests.Daemon;

public sealed class DomainCodecTests
{
    private const string VirshXml = """
        <domain type='kvm'>
          <name>web1</name>
          <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
          <memory unit='KiB'>524288</memory>
          <currentMemory unit='KiB'>524288</currentMemory>
          <vcpu placement='static'>2</vcpu>
          <os>
            <type arch='x86_64' machine='pc'>hvm</type>
            <kernel>/var/lib/kiln/images/vmlinuz</kernel>
            <initrd>/var/lib/kiln/images/initrd.img</initrd>
            <cmdline>console=ttyS0 root=/dev/vda rw</cmdline>
          </os>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <disk type='file' device='disk'>
              <driver name='qemu' type='raw'/>
              <source file='/var/lib/kiln/images/root.img'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='/var/lib/kiln/images/data.qcow2'/>
              <target dev='vdb' bus='virtio'/>
              <readonly/>
            </disk>
            <interface type='bridge'>
              <mac address='52:54:00:12:34:56'/>
              <source bridge='br0'/>
              <target dev='vnet7'/>
              <model type='virtio'/>
            </interface>
            <interface type='ethernet'>
              <target dev='tap3'/>
              <model type='virtio'/>
            </interface>
            <serial type='pty'><target port='0'/></serial>
            <console type='pty'><target type='serial' port='0'/></console>
          </devices>
        </domain>
        """;

    [Fact]
    public void ParsesTheCommonSubsetOfLibvirtXml()
    {
        var d = DomainCodec.Parse(VirshXml);
        Assert.Equal("web1", d.Name);
        Assert.Equal("4dea22b3-1d52-d8f3-2516-782e98ab3fa0", d.Uuid);
        Assert.Equal(512UL, d.MemoryMiB);
        Assert.Equal(2, d.Vcpus);
        Assert.Equal("/var/lib/kiln/images/vmlinuz", d.Os.Kernel);
        Assert.Equal("/var/lib/kiln/images/initrd.img", d.Os.Initrd);
        Assert.Equal("console=ttyS0 root=/dev/vda rw", d.Os.Cmdline);
        Assert.Equal(2, d.Disks.Count);
        Assert.Equal(("vda", "raw", false), (d.Disks[0].Target, d.Disks[0].Format, d.Disks[0].ReadOnly));
        Assert.Equal(("vdb", "qcow2", true), (d.Disks[1].Target, d.Disks[1].Format, d.Disks[1].ReadOnly));
        Assert.Equal("/var/lib/kiln/images/data.qcow2", d.Disks[1].Path);
        Assert.Equal(("bridge", "52:54:00:12:34:56", "br0", "vnet7"), (d.Interfaces[0].Type, d.Interfaces[0].Mac, d.Interfaces[0].Bridge, d.Interfaces[0].Tap));
        Assert.Equal(("ethernet", "tap3"), (d.Interfaces[1].Type, d.Interfaces[1].Tap));
        Assert.Equal("serial", d.Console);
    }

    [Theory]
    [InlineData("1", "GiB", 1024UL)]
    [InlineData("256", "MiB", 256UL)]
    [InlineData("268435456", "b", 256UL)]
    [InlineData("131072", null, 128UL)]
    [InlineData("1000", "MB", 953UL)]
    public void MemoryUnits(string value, string? unit, ulong mib)
    {
        string attr = unit is null ? "" : $" unit='{unit}'";
        var d = DomainCodec.FromXml($"<domain><name>m</name><memory{attr}>{value}</memory><os><kernel>/k</kernel></os></domain>");
        Assert.Equal(mib, d.MemoryMiB);
    }

    [Fact]
    public void XmlRoundTripsThroughDumpxml()
    {
        var d = DomainCodec.Parse(VirshXml);
        var again = DomainCodec.Parse(DomainCodec.ToXml(d));
        Assert.Equal(DomainCodec.ToJson(d), DomainCodec.ToJson(again));
    }

    [Fact]
    public void JsonRoundTrips()
    {
        var d = DomainCodec.Parse(VirshXml);
        var again = DomainCodec.Parse(DomainCodec.ToJson(d));
        Assert.Equal(DomainCodec.ToJson(d), DomainCodec.ToJson(again));
    }

    [Fact]
    public void JsonDefaultsAndGeneratedUuid()
    {
        var d = DomainCodec.FromJson("""{"name":"a","os":{"kernel":"/boot/k"},"disks":[{"path":"/d1"},{"path":"/d2"}]}""");
        Assert.True(Guid.TryParse(d.Uuid, out _));
        Assert.Equal(512UL, d.MemoryMiB);
        Assert.Equal(1, d.Vcpus);
        Assert.Equal(["vda", "vdb"], d.Disks.Select(x => x.Target));
    }

    [Theory]
    [InlineData("""{"name":"a","memoryMiB":"lots","os":{"kernel":"/k"}}""", "$.memoryMiB")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/d","readonly":"yes"}]}""", "$.disks[0].readonly")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"colour":"red"}""", "$")]
    [InlineData("""{"name":"a", """, "$")]
    [InlineData("""{"os":{"kernel":"/k"}}""", "name")]
    [InlineData("""{"name":"has space","os":{"kernel":"/k"}}""", "name")]
    [InlineData("""{"name":"a","uuid":"nope","os":{"kernel":"/k"}}""", "uuid")]
    [InlineData("""{"name":"a","vcpus":0,"os":{"kernel":"/k"}}""", "vcpus")]
    [InlineData("""{"name":"a","os":{}}""", "os.kernel")]
    [InlineData("""{"name":"a","os":{"kernel":"relative/k"}}""", "os.kernel")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/d","target":"sda"}]}""", "disks[0].target")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/d","target":"vda"},{"path":"/e","target":"vda"}]}""", "disks[1].target")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/d","format":"vmdk"}]}""", "disks[0].format")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"interfaces":[{"mac":"zz"}]}""", "interfaces[0].mac")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"interfaces":[{"type":"bridge"}]}""", "interfaces[0].bridge")]
    [InlineData("""{"name":"a","os":{"kernel":"/k"},"interfaces":[{"type":"user"}]}""", "interfaces[0].type")]
    public void BadJsonNamesTheField(string json, string field)
    {
        var e = Assert.Throws<DomainFormatException>(() => DomainCodec.Parse(json));
        Assert.StartsWith(field, e.Field);
        Assert.Contains(field.TrimStart('$', '.').Split('[')[0], e.Message);
    }

    [Theory]
    [InlineData("<domain><name>a</name>", "xml")]
    [InlineData("<vm><name>a</name></vm>", "domain")]
    [InlineData("<domain><os><kernel>/k</kernel></os></domain>", "domain/name")]
    [InlineData("<domain><name>a</name></domain>", "domain/os")]
    [InlineData("<domain><name>a</name><os><type>xen</type><kernel>/k</kernel></os></domain>", "domain/os/type")]
    [InlineData("<domain><name>a</name><memory unit='parsecs'>1</memory><os><kernel>/k</kernel></os></domain>", "domain/memory/@unit")]
    [InlineData("<domain><name>a</name><memory>lots</memory><os><kernel>/k</kernel></os></domain>", "domain/memory")]
    [InlineData("<domain><name>a</name><vcpu>-1</vcpu><os><kernel>/k</kernel></os></domain>", "domain/vcpu")]
    [InlineData("<domain><name>a</name><os><kernel>/k</kernel></os><devices><disk type='network'><source file='/d'/></disk></devices></domain>", "domain/devices/disk[0]/@type")]
    [InlineData("<domain><name>a</name><os><kernel>/k</kernel></os><devices><disk><target dev='vda'/></disk></devices></domain>", "domain/devices/disk[0]/source/@file")]
    [InlineData("<domain><name>a</name><os><kernel>/k</kernel></os><devices><disk><source file='/d'/><target dev='hda'/></disk></devices></domain>", "domain/devices/disk[0]/target")]
    [InlineData("<domain><name>a</name><os><kernel>/k</kernel></os><devices><interface type='network'/></devices></domain>", "domain/devices/interface[0]/@type")]
    [InlineData("<domain><name>a</name><os><kernel>/k</kernel></os><devices><interface type='ethernet'><mac address='x'/></interface></devices></domain>", "domain/devices/interface[0]/mac")]
    public void BadXmlNamesTheField(string xml, string field)
    {
        var e = Assert.Throws<DomainFormatException>(() => DomainCodec.Parse(xml));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void NeitherJsonNorXmlIsRefused() =>
        Assert.Throws<DomainFormatException>(() => DomainCodec.Parse("name: yaml"));

    /// <summary>What the daemon hands the VMM: the definition as a spec, field for field (it used to be `kiln run`
    /// argument text; the facts checked are the same).</summary>
    [Fact]
    public void TheSpecBootsTheDefinition()
    {
        var d = DomainCodec.FromJson("""
            {"name":"a","memoryMiB":64,"vcpus":2,"os":{"kernel":"/k","initrd":"/i","cmdline":"test=exit"},
             "disks":[{"path":"/b","target":"vdb","readonly":true},{"path":"/a","target":"vda","serial":"s1"}],
             "interfaces":[{"tap":"tap0","mac":"52:54:00:00:00:01"}],"rng":true,"transport":"mmio","onReboot":"destroy"}
            """);
        var spec = DomainSpec.From(d);
        Assert.Equal(("/k", "/i", "test=exit"), (spec.Boot.Kernel, spec.Boot.Initrd, spec.Boot.CommandLine));
        Assert.Equal((64UL << 20, 2), (spec.Machine.MemoryBytes, spec.Machine.Cpus));
        Assert.Equal([new DiskSpec { Path = "/a", Format = "raw", Serial = "s1" }, new DiskSpec { Path = "/b", Format = "raw", ReadOnly = true }], spec.Disks);
        Assert.Equal([new NicSpec { Tap = "tap0", Mac = "52:54:00:00:00:01" }], spec.Nics);
        Assert.True(spec.Devices.Rng);
        Assert.Equal(VirtioTransport.Mmio, spec.Machine.Transport);
        Assert.True(spec.Machine.NoReboot);
    }

    [Fact]
    public void DiskFormatIsPassedToTheVmm()
    {
        var d = DomainCodec.FromJson("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/q","format":"qcow2"}]}""");
        Assert.Equal("qcow2", DomainSpec.From(d).Disks[0].Format);
    }
}
