using System.Buffers.Binary;
using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

/// <summary>A virtio-net device on virtio-mmio over a <see cref="FakeNetBackend"/>, brought up by a test driver.
/// RX queue at 0x10000, TX queue at 0x20000 (16 entries each); buffers from 0x40000 up.</summary>
internal sealed class NetRig : IDisposable
{
    public const ulong Buffers = 0x40000;

    public NetRig(ulong features = VirtioFeatures.Version1, FakeNetBackend? backend = null, bool setup = true,
        GuestMemory? memory = null)
    {
        Memory = memory ?? VirtioTest.CreateMemory();
        Backend = backend ?? new FakeNetBackend();
        Device = new VirtioNet(Memory, Backend, new MacAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x55));
        Transport = new VirtioMmioTransport(Device, Interrupts, 0xD000_0000, 5);
        if (setup)
        {
            var q = VirtioTest.Setup(Transport, Memory, features);
            Rx = q[0];
            Tx = q[1];
        }
    }

    public GuestMemory Memory { get; }
    public FakeNetBackend Backend { get; }
    public VirtioNet Device { get; }
    public VirtioMmioTransport Transport { get; }
    public FakeVirtioInterrupts Interrupts { get; } = new();
    public DriverQueue Rx { get; set; } = null!;
    public DriverQueue Tx { get; set; } = null!;

    /// <summary>Posts single-descriptor writable RX buffers of <paramref name="size"/> bytes at descriptors
    /// first..first+count-1 (buffer i at Buffers + i * 0x1000 ... spaced by size rounded up).</summary>
    public void PostRx(int first, int count, uint size)
    {
        for (int i = first; i < first + count; i++)
        {
            Rx.SetDescriptor(i, RxAddress(i, size), size, 2);
            Rx.Publish((ushort)i);
        }
    }

    public static ulong RxAddress(int index, uint size) => Buffers + (ulong)index * ((size + 0xFFFu) & ~0xFFFu);

    public byte[] ReadGuest(ulong address, int length)
    {
        var b = new byte[length];
        Memory.Read(new GuestAddress(address), b);
        return b;
    }

    public static ushort NumBuffers(byte[] header) => BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(NetHeader.NumBuffersOffset));

    public void Dispose() => Transport.Dispose();
}
