using Kiln.Contracts.Control;
using Kiln.Contracts.Spec;
using Kiln.Daemon;

namespace Kiln.Tests.Contracts;

/// <summary>The VM spec: one JSON shape, validated once, every error naming its field.</summary>
public sealed class VmSpecTests
{
    private static readonly VmSpec Good = new()
    {
        Name = "vm1",
        Boot = new BootSpec { Kernel = "/k", CommandLine = "console=ttyS0" },
        Disks = [new DiskSpec { Path = "/d", Serial = "s1", Format = "qcow2" }],
        Nics = [new NicSpec { Tap = "tap0", Mac = "52:54:00:00:00:01" }],
    };

    [Fact]
    public void JsonRoundTripsAndEnumsAreLowerCase()
    {
        string json = VmSpecJson.ToJson(Good with { Console = ConsoleKind.Virtio });
        Assert.Contains("\"console\":\"virtio\"", json);
        Assert.Contains("\"transport\":\"pci\"", json);
        var back = VmSpecJson.Parse(json);
        Assert.Equal(Good.Disks, back.Disks);
        Assert.Equal(Good.Nics, back.Nics);
        Assert.Equal(ConsoleKind.Virtio, back.Console);
    }

    [Theory]
    [InlineData("machine.cpus", """{"version":1,"boot":{"kernel":"/k"},"machine":{"cpus":0}}""")]
    [InlineData("machine.memoryBytes", """{"version":1,"boot":{"kernel":"/k"},"machine":{"memoryBytes":1000}}""")]
    [InlineData("boot.kernel", """{"version":1}""")]
    [InlineData("disks[1].serial", """{"version":1,"boot":{"kernel":"/k"},"disks":[{"path":"/a"},{"path":"/b","serial":"123456789012345678901"}]}""")]
    [InlineData("disks[0].format", """{"version":1,"boot":{"kernel":"/k"},"disks":[{"path":"/a","format":"vmdk"}]}""")]
    [InlineData("nics[0].mac", """{"version":1,"boot":{"kernel":"/k"},"nics":[{"tap":"t","mac":"01:00:5e:00:00:01"}]}""")]
    [InlineData("nics[0].tap", """{"version":1,"boot":{"kernel":"/k"},"nics":[{"tap":"a/b"}]}""")]
    [InlineData("console", """{"version":1,"boot":{"kernel":"/k"},"console":"teletype"}""")]
    [InlineData("machine.colour", """{"version":1,"boot":{"kernel":"/k"},"machine":{"colour":"red"}}""")]
    [InlineData("version", """{"version":9,"boot":{"kernel":"/k"}}""")]
    [InlineData("devices.debugExitPort", """{"version":1,"boot":{"kernel":"/k"},"devices":{"debugExitPort":65533}}""")]
    [InlineData("source", """{"version":1,"boot":{"kernel":"/k"},"source":{"restore":{"file":"/s"},"incoming":{"listen":"tcp:0:0"}}}""")]
    public void ErrorsNameTheField(string field, string json)
    {
        var e = Assert.Throws<VmSpecException>(() => VmSpecJson.Parse(json));
        Assert.Equal(field, e.Field);
        Assert.StartsWith(field, e.Message);
    }

    [Fact]
    public void EveryBadFieldIsListed()
    {
        var bad = Good with { Machine = new MachineSpec { Cpus = 0, MemoryBytes = 3 }, Boot = new BootSpec() };
        var errors = VmSpecValidator.Validate(bad).Select(e => e.Field).ToList();
        Assert.Equal(["machine.memoryBytes", "machine.cpus", "boot.kernel"], errors);
    }

    [Fact]
    public void TooManyVirtioDevicesForTheTransportIsRefused()
    {
        var spec = Good with
        {
            Machine = new MachineSpec { Transport = VirtioTransport.Mmio },
            Disks = [.. Enumerable.Range(0, 9).Select(i => new DiskSpec { Path = $"/d{i}" })],
        };
        Assert.Equal("machine.transport", Assert.Throws<VmSpecException>(() => VmSpecValidator.Check(spec)).Field);
    }

    /// <summary>A value the old argument text could not carry: a serial with a comma and "format=" in it is a serial
    /// all the way to the VMM, and the disk's format stays the definition's.</summary>
    [Fact]
    public void DiskSerialWithCommaAndFormatStaysASerial()
    {
        var d = DomainCodec.FromJson("""{"name":"a","os":{"kernel":"/k"},"disks":[{"path":"/q","serial":"x,format=qcow2"}]}""");
        var spec = DomainSpec.From(d);
        var launch = VmmLaunch.Parse(new VmmLaunch { Spec = spec, ControlSocket = "/s", LogPath = "/l" }.ToJsonLine());
        Assert.Equal("x,format=qcow2", launch.Spec.Disks[0].Serial);
        Assert.Equal("raw", launch.Spec.Disks[0].Format);
    }

    [Fact]
    public void ALaunchLineWithABadSpecNamesTheSpecField()
    {
        var e = Assert.Throws<VmSpecException>(() => VmmLaunch.Parse("""{"spec":{"version":1,"boot":{"kernel":"/k"},"machine":{"cpus":"two"}}}"""));
        Assert.Equal("machine.cpus", e.Field);
    }
}
