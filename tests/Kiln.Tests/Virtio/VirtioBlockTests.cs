using System.Text;
using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Block;

namespace Kiln.Tests.Virtio;

public sealed class VirtioBlockTests
{
    private const uint In = 0, Out = 1, Flush = 4, GetId = 8, Discard = 11, WriteZeroes = 13;

    [Fact]
    public void ReadsSectorsIntoGuestMemory()
    {
        using var rig = new BlockRig();
        Assert.Equal(0, rig.Submit(In, 2, 1024, dataWritable: true));
        Assert.Equal(rig.FileBytes().AsSpan(1024, 1024).ToArray(), rig.DataBytes(1024));
        Assert.Equal(1, rig.Queue.UsedIdx);
        Assert.Equal((0u, 1025u), rig.Queue.UsedElement(0));
        Assert.Equal(1u, rig.Transport.InterruptStatus & 1);
        Assert.True(rig.Interrupts.Line);
    }

    [Fact]
    public void WritesSectorsToTheDisk()
    {
        using var rig = new BlockRig();
        var payload = Enumerable.Range(0, 512).Select(i => (byte)(255 - i)).ToArray();
        rig.Memory.Write(new GuestAddress(BlockRig.Data), payload);
        Assert.Equal(0, rig.Submit(Out, 5, 512, dataWritable: false));
        Assert.Equal(payload, rig.FileBytes().AsSpan(5 * 512, 512).ToArray());
        Assert.Equal((0u, 1u), rig.Queue.UsedElement(0));
        Assert.Equal(512, rig.Device.Metrics.WriteBytes);
    }

    [Fact]
    public void FlushSucceeds()
    {
        using var rig = new BlockRig(extraFeatures: BlockFeatures.Flush);
        Assert.Equal(0, rig.Submit(Flush, 0, 0, false));
        Assert.Equal(1, rig.Device.Metrics.Flushes);
    }

    [Fact]
    public void GetIdReturnsTheSerial()
    {
        using var rig = new BlockRig();
        Assert.Equal(0, rig.Submit(GetId, 0, 20, dataWritable: true));
        Assert.Equal("kiln-serial-0001\0\0\0\0", Encoding.ASCII.GetString(rig.DataBytes(20)));
        Assert.Equal((0u, 21u), rig.Queue.UsedElement(0));
    }

    [Fact]
    public void DiscardAndWriteZeroesClearRanges()
    {
        using var rig = new BlockRig(extraFeatures: BlockFeatures.Discard | BlockFeatures.WriteZeroes);
        WriteRange(rig, sector: 1, count: 2, flags: 0);
        Assert.Equal(0, rig.Submit(Discard, 0, 16, dataWritable: false));
        Assert.All(rig.FileBytes().AsSpan(512, 1024).ToArray(), b => Assert.Equal(0, b));
        WriteRange(rig, sector: 10, count: 1, flags: 1);
        Assert.Equal(0, rig.Submit(WriteZeroes, 0, 16, dataWritable: false));
        Assert.All(rig.FileBytes().AsSpan(5120, 512).ToArray(), b => Assert.Equal(0, b));
        Assert.NotEqual(0, rig.FileBytes()[5120 + 512]);
    }

    [Fact]
    public void DiscardWithUnmapFlagIsUnsupportedAndBadRangeIsIoError()
    {
        using var rig = new BlockRig();
        WriteRange(rig, sector: 1, count: 1, flags: 1);
        Assert.Equal(2, rig.Submit(Discard, 0, 16, false));
        WriteRange(rig, sector: 127, count: 2, flags: 0);
        Assert.Equal(1, rig.Submit(Discard, 0, 16, false));
        Assert.False(rig.Device.NeedsReset);
    }

    private static void WriteRange(BlockRig rig, ulong sector, uint count, uint flags)
    {
        rig.Memory.Write(new GuestAddress(BlockRig.Data), sector);
        rig.Memory.Write(new GuestAddress(BlockRig.Data + 8), count);
        rig.Memory.Write(new GuestAddress(BlockRig.Data + 12), flags);
    }

    [Fact]
    public void ReadOnlyDiskOffersRoAndFailsWrites()
    {
        using var rig = new BlockRig(readOnly: true, extraFeatures: BlockFeatures.ReadOnly);
        Assert.NotEqual(0UL, rig.Device.DeviceFeatures & BlockFeatures.ReadOnly);
        Assert.Equal(0UL, rig.Device.DeviceFeatures & BlockFeatures.Discard);
        var before = rig.FileBytes();
        Assert.Equal(1, rig.Submit(Out, 0, 512, false));
        Assert.Equal(1, rig.Submit(WriteZeroes, 0, 16, false));
        Assert.Equal(before, rig.FileBytes());
        Assert.Equal(0, rig.Submit(In, 0, 512, true));
        Assert.False(rig.Device.NeedsReset);
    }

    [Fact]
    public void OutOfRangeSectorsAreIoErrorsAndUnknownTypesUnsupported()
    {
        using var rig = new BlockRig();
        Assert.Equal(1, rig.Submit(In, 127, 1024, true));
        Assert.Equal(1, rig.Submit(In, ulong.MaxValue, 512, true));
        Assert.Equal(1, rig.Submit(In, 0, 100, true)); // not a whole sector
        Assert.Equal(2, rig.Submit(99, 0, 0, false));
        Assert.Equal(3, rig.Device.Metrics.IoErrors);
        Assert.Equal(1, rig.Device.Metrics.Unsupported);
        Assert.False(rig.Device.NeedsReset);
    }

    [Fact]
    public void CapacityComesFromTheFileSize()
    {
        using var rig = new BlockRig();
        Span<byte> b = stackalloc byte[8];
        rig.Transport.Read(0x100, b);
        Assert.Equal((ulong)BlockRig.DiskBytes / 512, BitConverter.ToUInt64(b));
    }

    [Fact]
    public void HostIoErrorBecomesIoErr()
    {
        using var memory = VirtioTest.CreateMemory();
        using var transport = new Kiln.Virtio.Mmio.VirtioMmioTransport(new VirtioBlock(memory, new FailingDisk()),
            new FakeVirtioInterrupts(), 0xD000_0000, 5);
        var q = VirtioTest.Setup(transport, memory, VirtioFeatures.Version1)[0];
        foreach (uint type in new[] { In, Out, Flush })
        {
            memory.Write(new GuestAddress(BlockRig.Header), type);
            q.SetDescriptor(0, BlockRig.Header, 16, 1, 1);
            q.SetDescriptor(1, BlockRig.Data, 512, (ushort)(type == In ? 3 : 1), 2);
            q.SetDescriptor(2, BlockRig.Status, 1, 2);
            q.Publish(0);
            transport.Notify(0);
            Assert.Equal(1, memory.Read<byte>(new GuestAddress(BlockRig.Status)));
        }
        Assert.False(transport.Device.NeedsReset);
    }

    private sealed class FailingDisk : Kiln.Storage.IDiskBackend
    {
        public ulong Capacity => 1 << 20;
        public bool IsReadOnly => false;
        public void Read(ulong offset, Span<byte> destination) => throw new IOException("EIO");
        public void Write(ulong offset, ReadOnlySpan<byte> source) => throw new IOException("EIO");
        public void Flush() => throw new IOException("EIO");
        public void Discard(ulong offset, ulong length) => throw new IOException("EIO");
        public void WriteZeroes(ulong offset, ulong length, bool mayUnmap) => throw new IOException("EIO");
        public void Dispose() { }
    }

    [Fact]
    public void IndirectRequestIsServed()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingIndirectDesc);
        const ulong table = 0x60000;
        rig.WriteHeader(In, 0);
        rig.Queue.SetDescriptorAt(table, BlockRig.Header, 16, 1, 1);
        rig.Queue.SetDescriptorAt(table + 16, BlockRig.Data, 512, 3, 2);
        rig.Queue.SetDescriptorAt(table + 32, BlockRig.Status, 1, 2);
        rig.Queue.SetDescriptor(0, table, 48, 4);
        rig.Queue.Publish(0);
        rig.Transport.Notify(0);
        Assert.Equal(0, rig.Memory.Read<byte>(new GuestAddress(BlockRig.Status)));
        Assert.Equal(rig.FileBytes().AsSpan(0, 512).ToArray(), rig.DataBytes(512));
    }

    [Fact]
    public void EventIdxSuppressesInterruptsUntilUsedEvent()
    {
        using var rig = new BlockRig(extraFeatures: VirtioFeatures.RingEventIdx);
        rig.Queue.SetUsedEvent(5);
        Assert.Equal(0, rig.Submit(In, 0, 512, true));
        Assert.Equal(1, rig.Interrupts.LineRaises); // the first notification is always sent
        rig.Transport.Write32(0x064, 1);
        Assert.Equal(0, rig.Submit(In, 0, 512, true));
        Assert.Equal(1, rig.Interrupts.LineRaises);
        Assert.Equal(2, rig.Queue.AvailEvent); // the device asks for a kick at the next entry
    }

    [Fact]
    public void NoInterruptFlagSuppressesInterrupts()
    {
        using var rig = new BlockRig();
        rig.Queue.SetAvailFlags(1);
        Assert.Equal(0, rig.Submit(In, 0, 512, true));
        Assert.Equal(0, rig.Interrupts.LineRaises);
    }

    [Fact]
    public void WorkerThreadProcessesKicks()
    {
        using var rig = new BlockRig();
        rig.Device.StartWorker();
        Assert.NotNull(rig.Device.NotifyEventFd);
        rig.WriteHeader(In, 1);
        rig.Queue.SetDescriptor(0, BlockRig.Header, 16, 1, 1);
        rig.Queue.SetDescriptor(1, BlockRig.Data, 512, 3, 2);
        rig.Queue.SetDescriptor(2, BlockRig.Status, 1, 2);
        rig.Queue.Publish(0);
        rig.Transport.Notify(0);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (rig.Queue.UsedIdx != 1 && DateTime.UtcNow < deadline)
            Thread.Sleep(5);
        Assert.Equal(1, rig.Queue.UsedIdx);
        Assert.Equal(0, rig.Memory.Read<byte>(new GuestAddress(BlockRig.Status)));
    }
}
