using System.Security.Cryptography;
using Kiln.Memory;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio.Rng;

/// <summary>virtio-rng (entropy device): fills each device-writable buffer the driver offers with bytes from the host's
/// CSPRNG (<see cref="RandomNumberGenerator"/>, i.e. getrandom). A device-readable buffer is a protocol violation.</summary>
public sealed class VirtioRng(GuestMemory memory) : VirtioDevice(memory, 1, QueueSize)
{
    public const ushort QueueSize = 256;

    /// <summary>Bytes served per request at most, so one huge buffer cannot monopolise the worker.</summary>
    public const int MaxRequestBytes = 64 * 1024;

    private readonly byte[] _buffer = new byte[MaxRequestBytes];
    private long _bytesServed;

    public override VirtioDeviceType DeviceType => VirtioDeviceType.Rng;
    public override string Name => "virtio-rng";
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    protected override ulong DeviceSpecificFeatures => 0;

    public override int ConfigSize => 0;

    public override void ReadConfig(int offset, Span<byte> data) => data.Clear();

    protected override void ProcessQueue(int index, Virtqueue queue)
    {
        bool completed = false;
        while (queue.Pop(Memory) is { } chain)
        {
            if (chain.ReadableLength != 0)
                throw new VirtioProtocolException("entropy request with a device-readable buffer");
            int length = (int)Math.Min(chain.WritableLength, MaxRequestBytes);
            var random = _buffer.AsSpan(0, length);
            RandomNumberGenerator.Fill(random);
            int written = chain.Write(Memory, 0, random);
            random.Clear();
            queue.AddUsed(Memory, chain.Head, (uint)written);
            Interlocked.Add(ref _bytesServed, written);
            completed = true;
        }
        if (completed)
            NotifyQueue(index, queue);
    }
}
