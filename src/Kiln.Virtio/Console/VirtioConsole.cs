using System.Buffers.Binary;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using Kiln.Memory;
using Kiln.Virtio.Queue;

namespace Kiln.Virtio.Console;

/// <summary>virtio-console with a single port (the guest's hvc0) and no multiport: queue 0 receives (host to guest),
/// queue 1 transmits (guest to host). Output goes to the same <see cref="ISerialOutput"/> a UART uses; input comes in
/// through <see cref="EnqueueInput"/>, like <see cref="Serial8250.EnqueueInput"/>. VIRTIO_CONSOLE_F_EMERG_WRITE lets
/// the guest print through the configuration space before the queues work.</summary>
public sealed class VirtioConsole : VirtioDevice, ISerialInput
{
    public const ushort QueueSize = 256;
    public const ulong FeatureEmergWrite = 1UL << 2;

    /// <summary>Host input held for the guest until it posts receive buffers; beyond this, input is refused.</summary>
    public const int InputCapacity = 4096;

    private const int ReceiveQueue = 0, TransmitQueue = 1;
    private const int ConfigLength = 12; // cols, rows, max_nr_ports, emerg_wr

    private readonly ISerialOutput _output;
    private readonly Lock _inputLock = new();
    private readonly Queue<byte> _input = new();
    private readonly byte[] _scratch = new byte[4096];
    private bool _inputRefused;

    public VirtioConsole(GuestMemory memory, ISerialOutput output) : base(memory, 2, QueueSize) => _output = output;

    public override VirtioDeviceType DeviceType => VirtioDeviceType.Console;
    public override string Name => "virtio-console";

    /// <summary>Raised (on the worker thread) when input space frees up after <see cref="EnqueueInput"/> refused
    /// bytes; same contract as <see cref="Serial8250.InputSpaceAvailable"/>.</summary>
    public event Action? InputSpaceAvailable;

    protected override ulong DeviceSpecificFeatures => FeatureEmergWrite;

    public override int ConfigSize => ConfigLength;

    public override void ReadConfig(int offset, Span<byte> data)
    {
        Span<byte> config = stackalloc byte[ConfigLength];
        config.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(config[4..], 1); // max_nr_ports (meaningful with MULTIPORT only)
        config.Slice(offset, data.Length).CopyTo(data);
    }

    /// <summary>emerg_wr (offset 8): one character straight to the output.</summary>
    public override void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        if (offset == 8 && data.Length >= 1)
            _output.Write(data[0]);
    }

    /// <summary>Feeds host input to the guest; thread-safe, never blocks. Returns how many bytes were accepted.</summary>
    public int EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        int accepted;
        lock (_inputLock)
        {
            accepted = Math.Min(bytes.Length, InputCapacity - _input.Count);
            for (int i = 0; i < accepted; i++)
                _input.Enqueue(bytes[i]);
            if (accepted < bytes.Length)
                _inputRefused = true;
        }
        if (accepted > 0)
            Kick();
        return accepted;
    }

    public int PendingInput
    {
        get
        {
            lock (_inputLock)
                return _input.Count;
        }
    }

    protected override void ProcessQueue(int index, Virtqueue queue)
    {
        if (index == TransmitQueue)
            Transmit(queue);
        else
            Receive(queue);
    }

    private void Transmit(Virtqueue queue)
    {
        bool completed = false;
        while (queue.Pop(Memory) is { } chain)
        {
            if (chain.WritableLength != 0)
                throw new VirtioProtocolException("transmit buffer is device-writable");
            for (ulong offset = 0; offset < chain.ReadableLength;)
            {
                int n = chain.Read(Memory, offset, _scratch);
                foreach (byte b in _scratch.AsSpan(0, n))
                    _output.Write(b);
                offset += (ulong)n;
            }
            queue.AddUsed(Memory, chain.Head, 0);
            completed = true;
        }
        if (completed)
            NotifyQueue(TransmitQueue, queue);
    }

    private void Receive(Virtqueue queue)
    {
        bool completed = false, freed = false;
        while (PendingInput > 0 && queue.Pop(Memory) is { } chain)
        {
            if (chain.ReadableLength != 0)
                throw new VirtioProtocolException("receive buffer is device-readable");
            int n;
            lock (_inputLock)
            {
                n = (int)Math.Min((ulong)Math.Min(_input.Count, _scratch.Length), chain.WritableLength);
                for (int i = 0; i < n; i++)
                    _scratch[i] = _input.Dequeue();
                if (_inputRefused && n > 0)
                {
                    _inputRefused = false;
                    freed = true;
                }
            }
            chain.Write(Memory, 0, _scratch.AsSpan(0, n));
            queue.AddUsed(Memory, chain.Head, (uint)n);
            completed = true;
        }
        if (completed)
            NotifyQueue(ReceiveQueue, queue);
        if (freed)
            InputSpaceAvailable?.Invoke();
    }

    private const byte StateVersion = 1;

    protected override void SaveDeviceState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        lock (_inputLock)
            writer.WriteBytes(_input.ToArray());
    }

    protected override void RestoreDeviceState(StateReader reader)
    {
        reader.ExpectVersion(Name, StateVersion);
        byte[] pending = reader.ReadBytes();
        if (pending.Length > InputCapacity)
            throw new StateFormatException($"{Name}: {pending.Length} bytes of pending input exceed {InputCapacity}");
        lock (_inputLock)
        {
            _input.Clear();
            foreach (byte b in pending)
                _input.Enqueue(b);
        }
    }
}
