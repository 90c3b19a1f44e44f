using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Queue;
using Kiln.Virtio.Rng;

namespace Kiln.Tests.Virtio;

/// <summary>A device worker is a thread entry point that guest values reach: what escapes a device there must cost
/// the device (DEVICE_NEEDS_RESET), never the worker thread (an unhandled exception on it aborts the VMM).</summary>
public sealed class WorkerContainmentTests : IDisposable
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);
    private readonly GuestMemory _memory = VirtioTest.CreateMemory();

    public void Dispose() => _memory.Dispose();

    /// <summary>An entropy device that throws an unexpected exception (not a protocol error) on its first request.</summary>
    private sealed class FlakyRng(GuestMemory memory) : VirtioDevice(memory, 1, 16)
    {
        public int Calls;

        public override VirtioDeviceType DeviceType => VirtioDeviceType.Rng;
        public override string Name => "flaky-rng";
        protected override ulong DeviceSpecificFeatures => 0;
        public override int ConfigSize => 0;

        public override void ReadConfig(int offset, Span<byte> data) => data.Clear();

        protected override void ProcessQueue(int index, Virtqueue queue)
        {
            if (Interlocked.Increment(ref Calls) == 1)
                throw new IndexOutOfRangeException("a device bug a guest can reach");
            while (queue.Pop(Memory) is { } chain)
                queue.AddUsed(Memory, chain.Head, 0);
        }
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the worker did not get there");
            Thread.Sleep(5);
        }
    }

    private static void Request(DriverQueue q, VirtioMmioTransport t)
    {
        q.SetDescriptor(0, 0x40000, 64, 2);
        q.Publish(0);
        t.Notify(0);
    }

    [Fact]
    public void AnExceptionInTheWorkerNeedsAResetAndTheWorkerLivesOn()
    {
        var device = new FlakyRng(_memory);
        using var transport = new VirtioMmioTransport(device, new FakeVirtioInterrupts(), 0xD000_0000, 5);
        device.StartWorker();
        var q = VirtioTest.Setup(transport, _memory, VirtioFeatures.Version1)[0];
        Request(q, transport);
        WaitFor(() => device.NeedsReset);
        Assert.Equal(1, device.ProtocolErrors);

        transport.Write32(0x070, 0); // the driver resets and starts over
        q = VirtioTest.Setup(transport, _memory, VirtioFeatures.Version1)[0];
        Request(q, transport);
        WaitFor(() => q.UsedIdx == 1);
        Assert.False(device.NeedsReset);
    }

    [Fact]
    public void InterruptsThatFailOnTheWorkerCostTheDeviceNotTheProcess()
    {
        // The used-buffer interrupt fails, then so does the configuration-change interrupt of the NEEDS_RESET that
        // follows: both on the worker thread.
        var interrupts = new FakeVirtioInterrupts();
        var device = new VirtioRng(_memory);
        using var transport = new VirtioMmioTransport(device, interrupts, 0xD000_0000, 5);
        device.StartWorker();
        var q = VirtioTest.Setup(transport, _memory, VirtioFeatures.Version1)[0];
        interrupts.Throw = true;
        Request(q, transport);
        WaitFor(() => device.NeedsReset);
        Assert.Equal(1, q.UsedIdx);

        interrupts.Throw = false;
        transport.Write32(0x070, 0);
        _memory.Write(new GuestAddress(q.Used + 2), (ushort)0); // a fresh used ring
        q = VirtioTest.Setup(transport, _memory, VirtioFeatures.Version1)[0];
        Request(q, transport);
        WaitFor(() => q.UsedIdx == 1 && interrupts.Line);
        Assert.False(device.NeedsReset);
    }
}
