using Kiln.Memory;
using Kiln.Storage;
using Kiln.Virtio;
using Kiln.Virtio.Block;
using Kiln.Virtio.Mmio;

namespace Kiln.Tests.Virtio;

/// <summary>A virtio-blk device on virtio-mmio over a temp-file disk, brought up by a test "driver".</summary>
internal sealed class BlockRig : IDisposable
{
    public const ulong Header = 0x40000, Data = 0x41000, Status = 0x5F000;
    public const int DiskBytes = 64 * 1024;

    private readonly string _path;

    public BlockRig(bool readOnly = false, ulong extraFeatures = 0, byte[]? contents = null, bool setup = true)
    {
        _path = Path.Combine(Path.GetTempPath(), $"kiln-blk-{Guid.NewGuid():N}.img");
        var bytes = contents ?? new byte[DiskBytes];
        if (contents is null)
            for (int i = 0; i < bytes.Length; i++)
                bytes[i] = (byte)(i * 31 + 7);
        File.WriteAllBytes(_path, bytes);
        Memory = VirtioTest.CreateMemory();
        Disk = RawDiskBackend.Open(_path, readOnly);
        Device = new VirtioBlock(Memory, Disk, "kiln-serial-0001");
        Transport = new VirtioMmioTransport(Device, Interrupts, 0xD000_0000, 5);
        if (setup)
            Queue = VirtioTest.Setup(Transport, Memory, VirtioFeatures.Version1 | extraFeatures)[0];
    }

    public GuestMemory Memory { get; }
    public RawDiskBackend Disk { get; }
    public VirtioBlock Device { get; }
    public VirtioMmioTransport Transport { get; }
    public FakeVirtioInterrupts Interrupts { get; } = new();
    public DriverQueue Queue { get; set; } = null!;
    public string DiskPath => _path;

    public byte[] FileBytes() => File.ReadAllBytes(_path);

    public void WriteHeader(uint type, ulong sector)
    {
        Memory.Write(new GuestAddress(Header), type);
        Memory.Write(new GuestAddress(Header + 4), 0u);
        Memory.Write(new GuestAddress(Header + 8), sector);
        Memory.Write(new GuestAddress(Status), (byte)0xEE);
    }

    /// <summary>A three-descriptor request (header, data, status) at descriptors 0-2; data is device-writable for
    /// reads (IN, GET_ID) and device-readable otherwise. Returns the status byte.</summary>
    public byte Submit(uint type, ulong sector, uint dataLength, bool dataWritable)
    {
        WriteHeader(type, sector);
        if (dataLength == 0)
        {
            Queue.SetDescriptor(0, Header, 16, 1, 2);
        }
        else
        {
            Queue.SetDescriptor(0, Header, 16, 1, 1);
            Queue.SetDescriptor(1, Data, dataLength, (ushort)(1 | (dataWritable ? 2 : 0)), 2);
        }
        Queue.SetDescriptor(2, Status, 1, 2);
        Queue.Publish(0);
        Transport.Notify(0);
        return Memory.Read<byte>(new GuestAddress(Status));
    }

    public byte[] DataBytes(int length)
    {
        var b = new byte[length];
        Memory.Read(new GuestAddress(Data), b);
        return b;
    }

    public void Dispose()
    {
        Transport.Dispose();
        Memory.Dispose();
        File.Delete(_path);
    }
}
