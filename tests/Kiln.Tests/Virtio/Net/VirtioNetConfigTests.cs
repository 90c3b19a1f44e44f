using Kiln.Virtio;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

public sealed class VirtioNetConfigTests
{
    private static byte[] Config(VirtioMmioTransport t)
    {
        var b = new byte[VirtioNet.ConfigLength];
        for (int i = 0; i < b.Length; i++)
            t.Read(MmioRegisters.Config + (ulong)i, b.AsSpan(i, 1));
        return b;
    }

    [Fact]
    public void ConfigSpaceHasMacLinkUpAndOnePair()
    {
        using var rig = new NetRig(setup: false);
        Assert.Equal(1u, rig.Transport.Read32(0x008)); // device id: net
        Assert.Equal(new byte[] { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 1, 0, 1, 0 }, Config(rig.Transport));
    }

    [Fact]
    public void LinkDownIsAConfigChange()
    {
        using var rig = new NetRig();
        uint generation = rig.Transport.Read32(MmioRegisters.ConfigGeneration);
        rig.Device.SetLinkUp(false);
        Assert.Equal(0, Config(rig.Transport)[6]);
        Assert.NotEqual(generation, rig.Transport.Read32(MmioRegisters.ConfigGeneration));
        Assert.Equal(MmioRegisters.InterruptConfigChange, rig.Transport.Read32(0x060) & MmioRegisters.InterruptConfigChange);
    }

    [Fact]
    public void DefaultMacIsLocallyAdministeredAndStable()
    {
        var a = MacAddress.FromName("tap0");
        Assert.Equal(a, MacAddress.FromName("tap0"));
        Assert.NotEqual(a, MacAddress.FromName("tap1"));
        Assert.Equal(0x02, a.A);
        using var device = new VirtioNet(VirtioTest.CreateMemory(), new FakeNetBackend());
        Assert.Equal(MacAddress.FromName("fake0"), device.Mac);
    }

    [Fact]
    public void GuestOffloadsAreOfferedOnlyWhenTheBackendHasThem()
    {
        using var full = new VirtioNet(VirtioTest.CreateMemory(), new FakeNetBackend());
        const ulong guest = NetFeatures.GuestCsum | NetFeatures.GuestTso4 | NetFeatures.GuestTso6 | NetFeatures.GuestEcn;
        const ulong always = VirtioFeatures.Version1 | VirtioFeatures.RingEventIdx | VirtioFeatures.RingIndirectDesc
                             | NetFeatures.Mac | NetFeatures.Status | NetFeatures.MrgRxbuf | NetFeatures.HostOffloads;
        Assert.Equal(always | guest, full.DeviceFeatures);
        using var none = new VirtioNet(VirtioTest.CreateMemory(), new FakeNetBackend(NetOffloads.None));
        Assert.Equal(always, none.DeviceFeatures);
        using var csum = new VirtioNet(VirtioTest.CreateMemory(), new FakeNetBackend(NetOffloads.Csum | NetOffloads.Ecn));
        Assert.Equal(always | NetFeatures.GuestCsum, csum.DeviceFeatures);
    }

    [Fact]
    public void NegotiatedGuestOffloadsReachTheBackendAndResetClearsThem()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.GuestCsum | NetFeatures.GuestTso4);
        Assert.Equal(NetOffloads.Csum | NetOffloads.Tso4, rig.Backend.OffloadCalls[^1]);
        rig.Transport.Write32(0x070, 0);
        Assert.Equal(NetOffloads.None, rig.Backend.OffloadCalls[^1]);
    }

    [Fact]
    public void TsoWithoutGuestCsumEnablesNothing()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.GuestTso4);
        Assert.Equal(NetOffloads.None, rig.Backend.OffloadCalls[^1]);
    }
}
