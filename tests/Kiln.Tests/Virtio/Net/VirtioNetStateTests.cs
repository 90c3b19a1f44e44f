using Kiln.Devices.State;
using Kiln.Tests.Devices;
using Kiln.Virtio;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

public sealed class VirtioNetStateTests
{
    [Fact]
    public void HeldFrameAndStashedBuffersSurviveARoundTrip()
    {
        const ulong features = VirtioFeatures.Version1 | NetFeatures.MrgRxbuf | NetFeatures.GuestCsum;
        using var rig = new NetRig(features);
        rig.PostRx(0, 1, 1024);
        byte[] frame = FakeNetBackend.Frame(1800, 5);
        rig.Backend.Incoming.Enqueue(frame);
        rig.Device.BackendReadable(); // one buffer stashed, frame held
        byte[] saved = Port.Save(rig.Transport);

        var backend = new FakeNetBackend();
        var device = new VirtioNet(rig.Memory, backend, rig.Device.Mac);
        using var restored = new VirtioMmioTransport(device, new FakeVirtioInterrupts(), 0xD000_0000, 5);
        Port.Restore(restored, saved);
        Assert.Equal(saved, Port.Save(restored));
        Assert.Equal(NetOffloads.Csum, backend.OffloadCalls[^1]);
        Assert.Equal(NetOffloads.Csum, device.ActiveOffloads);

        rig.PostRx(1, 1, 1024);
        restored.Notify(0);
        Assert.Equal(2, rig.Rx.UsedIdx);
        Assert.Equal(2, NetRig.NumBuffers(rig.ReadGuest(NetRig.RxAddress(0, 1024), 12)));
        Assert.Equal(frame[1024..], rig.ReadGuest(NetRig.RxAddress(1, 1024), frame.Length - 1024));
        Assert.Equal(0, backend.ReceiveCalls - 1); // only the drain check after delivering
    }

    [Fact]
    public void RestoreRefusesAnotherMac()
    {
        using var rig = new NetRig();
        byte[] saved = Port.Save(rig.Transport);
        var device = new VirtioNet(rig.Memory, new FakeNetBackend(), new MacAddress(2, 0, 0, 0, 0, 1));
        using var other = new VirtioMmioTransport(device, new FakeVirtioInterrupts(), 0xD000_0000, 5);
        Assert.Throws<StateFormatException>(() => Port.Restore(other, saved));
    }

    [Fact]
    public void RestoreRefusesOffloadsTheBackendLacks()
    {
        using var rig = new NetRig(VirtioFeatures.Version1 | NetFeatures.GuestCsum);
        byte[] saved = Port.Save(rig.Transport);
        var device = new VirtioNet(rig.Memory, new FakeNetBackend(NetOffloads.None), rig.Device.Mac);
        using var other = new VirtioMmioTransport(device, new FakeVirtioInterrupts(), 0xD000_0000, 5);
        Assert.Throws<StateFormatException>(() => Port.Restore(other, saved));
    }
}
