using System.Buffers.Binary;
using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Mmio;

namespace Kiln.Tests.Virtio;

/// <summary>Records what a transport asks of the VMM.</summary>
internal sealed class FakeVirtioInterrupts : IVirtioInterrupts
{
    private readonly Lock _lock = new();

    public bool Line { get; private set; }
    public int LineRaises { get; private set; }
    public List<(ulong Address, uint Data)> Msis { get; } = [];

    /// <summary>An interrupt sink that fails (as KVM_SIGNAL_MSI or an irqfd could), to test containment.</summary>
    public volatile bool Throw;

    public void SetLine(bool asserted)
    {
        if (Throw)
            throw new InvalidOperationException("line signal failed");
        lock (_lock)
        {
            if (asserted)
                LineRaises++;
            Line = asserted;
        }
    }

    public void SignalMsi(ulong address, uint data)
    {
        if (Throw)
            throw new InvalidOperationException($"MSI to 0x{address:x} failed");
        lock (_lock)
            Msis.Add((address, data));
    }
}

/// <summary>The driver's side of one split virtqueue in test-owned guest memory: descriptor table, avail and used rings
/// at fixed addresses, written the way a guest driver would.</summary>
internal sealed class DriverQueue(GuestMemory memory, ushort size, ulong desc, ulong avail, ulong used)
{
    public ushort Size { get; } = size;
    public ulong Desc { get; } = desc;
    public ulong Avail { get; } = avail;
    public ulong Used { get; } = used;
    private ushort _availIdx;

    public void SetDescriptor(int index, ulong address, uint length, ushort flags = 0, ushort next = 0) =>
        SetDescriptorAt(Desc + (ulong)index * 16, address, length, flags, next);

    public void SetDescriptorAt(ulong at, ulong address, uint length, ushort flags = 0, ushort next = 0)
    {
        memory.Write(new GuestAddress(at), address);
        memory.Write(new GuestAddress(at + 8), length);
        memory.Write(new GuestAddress(at + 12), flags);
        memory.Write(new GuestAddress(at + 14), next);
    }

    /// <summary>Makes a chain head available and bumps avail idx.</summary>
    public void Publish(ushort head)
    {
        memory.Write(new GuestAddress(Avail + 4 + 2UL * (ushort)(_availIdx % Size)), head);
        _availIdx++;
        memory.Write(new GuestAddress(Avail + 2), _availIdx);
    }

    public void SetAvailIdx(ushort idx)
    {
        _availIdx = idx;
        memory.Write(new GuestAddress(Avail + 2), idx);
    }

    public void SetAvailFlags(ushort flags) => memory.Write(new GuestAddress(Avail), flags);

    public void SetUsedEvent(ushort value) => memory.Write(new GuestAddress(Avail + 4 + 2UL * Size), value);

    public ushort UsedIdx => memory.Read<ushort>(new GuestAddress(Used + 2));

    public (uint Id, uint Length) UsedElement(int i) =>
        (memory.Read<uint>(new GuestAddress(Used + 4 + 8UL * (ulong)(i % Size))),
         memory.Read<uint>(new GuestAddress(Used + 8 + 8UL * (ulong)(i % Size))));

    public ushort AvailEvent => memory.Read<ushort>(new GuestAddress(Used + 4 + 8UL * Size));
}

internal static class VirtioTest
{
    public const ulong RamSize = 1 << 20;

    public static GuestMemory CreateMemory() => GuestMemory.Create([(new GuestAddress(0), RamSize)]);

    public static uint Read32(this VirtioMmioTransport t, ulong offset)
    {
        Span<byte> b = stackalloc byte[4];
        t.Read(offset, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public static void Write32(this VirtioMmioTransport t, ulong offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        t.Write(offset, b);
    }

    /// <summary>Brings a device up over MMIO like Linux does: ACK, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
    /// Queue q lives at 0x10000 * (q + 1) (descriptors), +0x4000 (avail), +0x8000 (used).</summary>
    public static DriverQueue[] Setup(VirtioMmioTransport t, GuestMemory memory, ulong features, ushort size = 16)
    {
        t.Write32(0x070, VirtioStatus.Acknowledge);
        t.Write32(0x070, VirtioStatus.Acknowledge | VirtioStatus.Driver);
        t.Write32(0x024, 0);
        t.Write32(0x020, (uint)features);
        t.Write32(0x024, 1);
        t.Write32(0x020, (uint)(features >> 32));
        t.Write32(0x070, VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk);
        Assert.Equal(VirtioStatus.FeaturesOk, (byte)(t.Read32(0x070) & VirtioStatus.FeaturesOk));
        var queues = new DriverQueue[t.Device.Queues.Count];
        for (int q = 0; q < queues.Length; q++)
        {
            ulong baseAddress = 0x10000UL * (ulong)(q + 1);
            queues[q] = new DriverQueue(memory, size, baseAddress, baseAddress + 0x4000, baseAddress + 0x8000);
            t.Write32(0x030, (uint)q);
            t.Write32(0x038, size);
            t.Write32(0x080, (uint)queues[q].Desc);
            t.Write32(0x084, 0);
            t.Write32(0x090, (uint)queues[q].Avail);
            t.Write32(0x094, 0);
            t.Write32(0x0A0, (uint)queues[q].Used);
            t.Write32(0x0A4, 0);
            t.Write32(0x044, 1);
        }
        t.Write32(0x070, VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk);
        return queues;
    }

    public static void Notify(this VirtioMmioTransport t, uint queue) => t.Write32(0x050, queue);
}
