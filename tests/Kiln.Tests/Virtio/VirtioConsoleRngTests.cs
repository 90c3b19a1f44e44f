using System.Text;
using Kiln.Memory;
using Kiln.Tests.Devices;
using Kiln.Virtio;
using Kiln.Virtio.Console;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Rng;

namespace Kiln.Tests.Virtio;

public sealed class VirtioConsoleRngTests
{
    [Fact]
    public void RngFillsWritableBuffers()
    {
        using var memory = VirtioTest.CreateMemory();
        var t = new VirtioMmioTransport(new VirtioRng(memory), new FakeVirtioInterrupts(), 0, 5);
        var q = VirtioTest.Setup(t, memory, VirtioFeatures.Version1)[0];
        q.SetDescriptor(0, 0x40000, 256, 3, 1);
        q.SetDescriptor(1, 0x41000, 256, 2);
        q.Publish(0);
        t.Notify(0);
        Assert.Equal((0u, 512u), q.UsedElement(0));
        var bytes = new byte[256];
        memory.Read(new GuestAddress(0x41000), bytes);
        Assert.True(bytes.Distinct().Count() > 100);
    }

    [Fact]
    public void RngRejectsReadableBuffers()
    {
        using var memory = VirtioTest.CreateMemory();
        var t = new VirtioMmioTransport(new VirtioRng(memory), new FakeVirtioInterrupts(), 0, 5);
        var q = VirtioTest.Setup(t, memory, VirtioFeatures.Version1)[0];
        q.SetDescriptor(0, 0x40000, 256, 0);
        q.Publish(0);
        t.Notify(0);
        Assert.True(t.Device.NeedsReset);
    }

    private static (VirtioMmioTransport T, VirtioConsole Console, DriverQueue[] Queues, FakeSerialOutput Output) Console(GuestMemory memory)
    {
        var output = new FakeSerialOutput();
        var console = new VirtioConsole(memory, output);
        var t = new VirtioMmioTransport(console, new FakeVirtioInterrupts(), 0, 5);
        return (t, console, VirtioTest.Setup(t, memory, VirtioFeatures.Version1), output);
    }

    [Fact]
    public void ConsoleTransmitsToTheSerialOutput()
    {
        using var memory = VirtioTest.CreateMemory();
        var (t, _, queues, output) = Console(memory);
        memory.Write(new GuestAddress(0x40000), "hello "u8);
        memory.Write(new GuestAddress(0x41000), "hvc0\n"u8);
        queues[1].SetDescriptor(0, 0x40000, 6, 1, 1);
        queues[1].SetDescriptor(1, 0x41000, 5, 0);
        queues[1].Publish(0);
        t.Notify(1);
        Assert.Equal("hello hvc0\n", Encoding.ASCII.GetString(output.Bytes.ToArray()));
        Assert.Equal((0u, 0u), queues[1].UsedElement(0));
    }

    [Fact]
    public void ConsoleInputWaitsForReceiveBuffers()
    {
        using var memory = VirtioTest.CreateMemory();
        var (t, console, queues, _) = Console(memory);
        Assert.Equal(3, console.EnqueueInput("abc"u8));
        Assert.Equal(3, console.PendingInput);
        queues[0].SetDescriptor(0, 0x50000, 2, 2);
        queues[0].SetDescriptor(1, 0x50010, 64, 2);
        queues[0].Publish(0);
        queues[0].Publish(1);
        t.Notify(0);
        Assert.Equal(2, queues[0].UsedIdx);
        Assert.Equal((0u, 2u), queues[0].UsedElement(0));
        Assert.Equal((1u, 1u), queues[0].UsedElement(1));
        var got = new byte[3];
        memory.Read(new GuestAddress(0x50000), got.AsSpan(0, 2));
        memory.Read(new GuestAddress(0x50010), got.AsSpan(2, 1));
        Assert.Equal("abc", Encoding.ASCII.GetString(got));
        Assert.Equal(0, console.PendingInput);
    }

    [Fact]
    public void ConsoleInputIsBoundedAndSignalsFreedSpace()
    {
        using var memory = VirtioTest.CreateMemory();
        var (t, console, queues, _) = Console(memory);
        int freed = 0;
        console.InputSpaceAvailable += () => freed++;
        var big = new byte[VirtioConsole.InputCapacity + 10];
        Assert.Equal(VirtioConsole.InputCapacity, console.EnqueueInput(big));
        queues[0].SetDescriptor(0, 0x50000, 4096, 2);
        queues[0].Publish(0);
        t.Notify(0);
        Assert.Equal(1, freed);
    }

    [Fact]
    public void ConsoleEmergencyWrite()
    {
        using var memory = VirtioTest.CreateMemory();
        var (t, _, _, output) = Console(memory);
        t.Write(0x100 + 8, [(byte)'!', 0, 0, 0]);
        Assert.Equal("!", Encoding.ASCII.GetString(output.Bytes.ToArray()));
    }

    [Fact]
    public void ConsolePendingInputSurvivesSaveRestore()
    {
        using var memory = VirtioTest.CreateMemory();
        var (t, console, _, _) = Console(memory);
        console.EnqueueInput("xyz"u8);
        var saved = Port.Save(t);
        var copy = new VirtioConsole(memory, new FakeSerialOutput());
        var t2 = new VirtioMmioTransport(copy, new FakeVirtioInterrupts(), 0, 5);
        Port.Restore(t2, saved);
        Assert.Equal(3, copy.PendingInput);
    }
}
