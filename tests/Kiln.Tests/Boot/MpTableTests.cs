using System.Text;
using Kiln.Boot;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

public sealed class MpTableTests
{
    private const ulong FloatingPointer = 0x9FC00;

    private static byte Sum(byte[] bytes) => bytes.Aggregate((byte)0, (sum, b) => (byte)(sum + b));

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void TablesHaveValidChecksumsAndOneProcessorEntryPerCpu(int cpus)
    {
        using var memory = Create(16 * MiB);
        MpTable.Write(memory, cpus);

        byte[] pointer = memory.Bytes(FloatingPointer, 16);
        Assert.Equal("_MP_", Encoding.ASCII.GetString(pointer, 0, 4));
        Assert.Equal(1, pointer[8]);
        Assert.Equal(4, pointer[9]);
        Assert.Equal(0, Sum(pointer));
        uint config = BitConverter.ToUInt32(pointer, 4);
        Assert.Equal(FloatingPointer + 16, config);

        Assert.Equal("PCMP", Encoding.ASCII.GetString(memory.Bytes(config, 4)));
        ushort length = memory.U16(config + 4);
        Assert.Equal(4, memory.U8(config + 6));
        Assert.Equal(0, Sum(memory.Bytes(config, length)));
        Assert.True(config + length <= 0xA0000, "the tables stay in the reserved last KiB of base memory");
        Assert.Equal(0xFEE00000u, memory.U32(config + 36));

        var counts = new int[5];
        var processors = new List<(byte ApicId, byte Flags)>();
        var ioInterrupts = new List<(byte Irq, byte Pin, byte IoApic)>();
        byte ioApicId = 0;
        ulong entry = config + 44;
        for (int i = 0; i < memory.U16(config + 34); i++)
        {
            byte type = memory.U8(entry);
            counts[type]++;
            if (type == 0)
                processors.Add((memory.U8(entry + 1), memory.U8(entry + 3)));
            if (type == 2)
            {
                ioApicId = memory.U8(entry + 1);
                Assert.Equal(0x11, memory.U8(entry + 2));
                Assert.Equal(0xFEC00000u, memory.U32(entry + 4));
            }
            if (type == 3)
                ioInterrupts.Add((memory.U8(entry + 5), memory.U8(entry + 7), memory.U8(entry + 6)));
            entry += type == 0 ? 20UL : 8UL;
        }
        Assert.Equal(config + length, entry);
        Assert.Equal([cpus, 1, 1, 16, 2], counts);
        Assert.Equal(Enumerable.Range(0, cpus).Select(i => (byte)i), processors.Select(p => p.ApicId));
        Assert.Equal(3, processors[0].Flags); // enabled + BSP
        Assert.All(processors.Skip(1), p => Assert.Equal(1, p.Flags));
        Assert.Equal(cpus, ioApicId);
        Assert.All(ioInterrupts, i => Assert.Equal(ioApicId, i.IoApic));
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (byte)i), ioInterrupts.Select(i => i.Irq));
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (byte)i), ioInterrupts.Select(i => i.Pin));
    }

    [Fact]
    public void TooManyCpusForTheReservedKiBAreRefused()
    {
        using var memory = Create(16 * MiB);
        MpTable.Write(memory, MpTable.MaxCpus);
        Assert.Throws<BootException>(() => MpTable.Write(memory, MpTable.MaxCpus + 1));
    }

    [Fact]
    public void LinuxBootWritesTheMpTableForTheRequestedCpus()
    {
        using var memory = Create(512 * MiB);
        KernelLoader.Load(memory, new BootRequest(RealKernel.Path, null, "", 4));
        Assert.Equal("_MP_", Encoding.ASCII.GetString(memory.Bytes(FloatingPointer, 4)));
        uint config = memory.U32(FloatingPointer + 4);
        Assert.Equal(4 + 1 + 1 + 16 + 2, memory.U16(config + 34));
    }
}
