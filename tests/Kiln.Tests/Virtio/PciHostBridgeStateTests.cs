using System.Buffers.Binary;
using Kiln.Devices.State;
using Kiln.Virtio.Pci;

namespace Kiln.Tests.Virtio;

/// <summary>The PCI host bridge's CONFIG_ADDRESS latch survives a save/restore: a guest saved between writing 0xCF8
/// and reading 0xCFC reads the register it selected.</summary>
public sealed class PciHostBridgeStateTests
{
    [Fact]
    public void ConfigAddressLatchRoundTrips()
    {
        var a = new PciHostBridge();
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, 0x8000_0008); // bus 0, device 0, register 8: class code
        a.AddressPort.Write(0, word);
        var w = new StateWriter();
        a.SaveState(w);

        var b = new PciHostBridge();
        b.RestoreState(new StateReader(w.ToArray()));
        b.AddressPort.Read(0, word);
        Assert.Equal(0x8000_0008u, BinaryPrimitives.ReadUInt32LittleEndian(word));
        b.DataPort.Read(0, word);
        Assert.Equal(0x0600_0000u, BinaryPrimitives.ReadUInt32LittleEndian(word) & 0xFFFF_FF00); // host bridge class
    }

    [Fact]
    public void CorruptBridgeStateIsRefused()
    {
        var w = new StateWriter();
        w.WriteByte(1);
        w.WriteUInt32(0x7F00_0001); // reserved bits set
        w.WriteBytes(new byte[256]);
        Assert.Throws<StateFormatException>(() => new PciHostBridge().RestoreState(new StateReader(w.ToArray())));
        Assert.Throws<StateFormatException>(() => new PciHostBridge().RestoreState(new StateReader(new byte[] { 1, 0 })));
    }
}
