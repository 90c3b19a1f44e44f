using System.Buffers.Binary;
using Kiln.Memory;
using Kiln.Vmm.Migration;

namespace Kiln.Tests.Vmm.Migration;

/// <summary>The destination's page decoder gets bytes from the network: every hostile frame is refused with a
/// MigrationException before anything outside guest RAM is touched.</summary>
public sealed class ApplyPagesTests : IDisposable
{
    private readonly GuestMemory _memory = GuestMemory.Create([(new GuestAddress(0), 1 << 20), (new GuestAddress(0x200000), 1 << 20)]);

    public void Dispose() => _memory.Dispose();

    private static byte[] Frame(params (ulong Address, byte Kind, byte Fill)[] entries)
    {
        var bytes = new List<byte>();
        var count = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(count, (uint)entries.Length);
        bytes.AddRange(count);
        foreach (var (address, kind, fill) in entries)
        {
            var header = new byte[9];
            BinaryPrimitives.WriteUInt64LittleEndian(header, address);
            header[8] = kind;
            bytes.AddRange(header);
            if (kind == 0)
                bytes.AddRange(Enumerable.Repeat(fill, 4096));
        }
        return [.. bytes];
    }

    [Fact]
    public void WritesDataPagesAndClearsZeroPages()
    {
        _memory.Fill(new GuestAddress(0x1000), 4096, 0x55);
        IncomingMigration.ApplyPages(_memory, Frame((0x200000, 0, 0xAB), (0x1000, 1, 0)));
        Assert.Equal(0xAB, _memory.Read<byte>(new GuestAddress(0x200FFF)));
        Assert.Equal(0, _memory.Read<byte>(new GuestAddress(0x1800)));
    }

    [Theory]
    [InlineData(0x100000UL)]          // the hole between the regions
    [InlineData(0x300000UL)]          // past the end of RAM
    [InlineData(0x1001UL)]            // not page aligned
    [InlineData(0xFFFF_FFFF_FFFF_F000UL)] // would overflow address + length
    public void RefusesPagesOutsideRam(ulong address)
    {
        var e = Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, Frame((address, 0, 1))));
        Assert.Contains("not a page of guest RAM", e.Message);
    }

    [Fact]
    public void RefusesMalformedFrames()
    {
        byte[] good = Frame((0x2000, 0, 7));
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, good.AsSpan(0, 3)));
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, good.AsSpan(0, good.Length - 1)));
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, good.AsSpan(0, 10)));
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, [.. good, 0]));
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, Frame((0x2000, 9, 0))));
        // A count far larger than the payload.
        byte[] lying = [.. good];
        BinaryPrimitives.WriteUInt32LittleEndian(lying, uint.MaxValue);
        Assert.Throws<MigrationException>(() => IncomingMigration.ApplyPages(_memory, lying));
    }
}
