using Kiln.Contracts.Spec;
using System.Buffers.Binary;
using Kiln.Interop;
using Kiln.Storage;
using Kiln.Vmm;
using Kiln.Vmm.Migration;

namespace Kiln.Tests.Vmm.Migration;

/// <summary>copy-storage's wire format end to end (source pass -> DiskBlocks frames -> destination), and the
/// destination's checks of the Hello disk table and of every DiskBlocks entry.</summary>
public sealed class DiskStreamingTests : IDisposable
{
    private const int Block = DirtyBlockTracker.BlockSize;
    private const ulong Size = 40 * (ulong)Block + 1024; // a short last block
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-diskstream-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string NewRaw(string name, ulong size = Size)
    {
        string path = Path.Combine(_dir, name);
        ImageCreate.Raw(path, size);
        return path;
    }

    private static DirtyBlockTracker Open(string path) => new(DiskImage.Open(path, null, readOnly: false));

    /// <summary>Runs <paramref name="send"/> into a buffer and applies every DiskBlocks frame to the receiver.</summary>
    private static int Transfer(Action<MigrationStream> send, DiskReceiver receiver)
    {
        var wire = new MemoryStream();
        using (var writer = new MigrationStream(wire))
        {
            send(writer);
            writer.Flush();
        }
        var reader = new MigrationStream(new MemoryStream(wire.ToArray()));
        int frames = 0;
        byte[] buffer = new byte[1];
        while (true)
        {
            try
            {
                var (type, payload) = reader.ReadFrameInto(ref buffer);
                Assert.Equal(MigrationFrame.DiskBlocks, type);
                receiver.Apply(payload.Span);
                frames++;
            }
            catch (MigrationException e) when (e.Message.Contains("closed"))
            {
                return frames;
            }
        }
    }

    private static void AssertSameContent(IDiskBackend a, IDiskBackend b)
    {
        Assert.Equal(a.Capacity, b.Capacity);
        var x = new byte[a.Capacity];
        var y = new byte[b.Capacity];
        a.Read(0, x);
        b.Read(0, y);
        Assert.True(x.AsSpan().SequenceEqual(y), "the disks differ");
    }

    private static void Fill(IDiskBackend disk, ulong offset, int length, byte seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++)
            data[i] = (byte)(seed + i * 3 + 1 | 1);
        disk.Write(offset, data);
    }

    [Fact]
    public void FirstPassThenDirtyBlocksRebuildTheDiskFreshOrOverwritten()
    {
        using var source = Open(NewRaw("src.raw"));
        Fill(source, 0, 100, 1);
        Fill(source, 7 * (ulong)Block + 3, Block, 2);        // two blocks
        Fill(source, Size - 10, 10, 3);                      // the short last block
        var streaming = DiskStreaming.ForDisks([source]);

        using var fresh = Open(NewRaw("fresh.raw"));
        string usedPath = NewRaw("used.raw");
        using (var used = Open(usedPath))
            for (ulong b = 0; b < 41; b++)
                Fill(used, b * Block, 512, 9);                  // garbage everywhere: a stale image
        using var usedDisk = Open(usedPath);
        var intoFresh = DiskReceiver.ForDisks([(fresh, true)]);
        var intoUsed = DiskReceiver.ForDisks([(usedDisk, false)]);

        streaming.Start();
        Transfer(s => streaming.SendAll(s, () => { }), intoFresh);
        Transfer(s => DiskStreaming.ForDisks([source]).SendAll(s, () => { }), intoUsed);
        AssertSameContent(source, fresh);
        AssertSameContent(source, usedDisk);
        Assert.InRange(streaming.BytesSent, 3L * Block + 1024, 3L * Block + 2048); // blocks 0, 7, 8, the last; zero runs

        // The guest changes things: new data, and a block that held data is zeroed.
        Fill(source, 20 * (ulong)Block, 700, 4);
        source.WriteZeroes(7 * (ulong)Block, (ulong)Block, mayUnmap: true);
        Assert.Equal(2L * Block, streaming.PendingBytes);
        Transfer(s => streaming.SendDirty(s, () => { }), intoFresh);
        AssertSameContent(source, fresh);
        Assert.Equal(0, streaming.PendingBytes);
        streaming.Stop();
    }

    [Fact]
    public void QcowBackingChainIsFlattenedIntoOneImage()
    {
        string basePath = NewRaw("base.raw");
        using (var b = Open(basePath))
            Fill(b, 3 * (ulong)Block, 5000, 6);
        string top = Path.Combine(_dir, "top.qcow2");
        ImageCreate.Qcow2(top, Size, backingFile: basePath, backingFormat: "raw");
        using var source = Open(top);
        Fill(source, 30 * (ulong)Block, 100, 7);
        string dest = Path.Combine(_dir, "dest.qcow2");
        ImageCreate.Qcow2(dest, Size);
        using var destination = Open(dest);
        Transfer(s => DiskStreaming.ForDisks([source]).SendAll(s, () => { }), DiskReceiver.ForDisks([(destination, true)]));
        AssertSameContent(source, destination);
    }

    [Fact]
    public void ReadOnlyDisksAreAnnouncedButNotCopied()
    {
        string a = NewRaw("a.raw"), b = NewRaw("b.raw", 2 * (ulong)Block);
        using var rw = Open(a);
        using var ro = new DirtyBlockTracker(DiskImage.Open(b, "raw", readOnly: true));
        var table = DiskStreaming.ForDisks([rw, ro]).HelloExtension();
        Assert.Equal(4 + 2 * DiskStreaming.TableEntry, table.Length);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(table));
        Assert.Equal(Size, BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(4)));
        Assert.Equal(1, table[12]);
        Assert.Equal(0, table[12 + DiskStreaming.TableEntry]);
        Assert.Equal(FileIdentity.Of(a), FileIdentity.ReadFrom(table.AsSpan(14)));
        Assert.True(FileIdentity.Of(a).IsKnown);
        Assert.NotEqual(FileIdentity.Of(a), FileIdentity.Of(b));
    }

    private static byte[] Frame(uint disk, params (ulong Offset, uint Length, byte Kind, int Data)[] entries)
    {
        var frame = new List<byte>();
        var head = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(head, disk);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), (uint)entries.Length);
        frame.AddRange(head);
        foreach (var (offset, length, kind, data) in entries)
        {
            var entry = new byte[13];
            BinaryPrimitives.WriteUInt64LittleEndian(entry, offset);
            BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(8), length);
            entry[12] = kind;
            frame.AddRange(entry);
            frame.AddRange(Enumerable.Repeat((byte)0xab, data));
        }
        return [.. frame];
    }

    [Fact]
    public void HostileDiskBlocksAreRefusedBeforeAnyWrite()
    {
        using var disk = Open(NewRaw("d.raw"));
        var receiver = DiskReceiver.ForDisks([(disk, true)]);
        byte[][] hostile =
        [
            [1, 2, 3],                                                          // short
            Frame(1, (0, 512, 0, 512)),                                         // no such disk
            Frame(uint.MaxValue, (0, 512, 0, 512)),
            Frame(0, (512, 512, 0, 512)),                                       // not block-aligned
            Frame(0, (0, 0, 1, 0)),                                             // empty range
            Frame(0, (40 * (ulong)Block, 2048, 0, 2048)),                       // past the end
            Frame(0, (ulong.MaxValue - (ulong)Block + 1, 512, 1, 0)),           // offset overflow
            Frame(0, (0, uint.MaxValue, 1, 0)),                                 // zero run past the end
            Frame(0, (0, (uint)Block + 512, 0, Block + 512)),                   // more than a block of data
            Frame(0, (0, 4096, 0, 100)),                                        // data cut short
            Frame(0, (0, 512, 2, 0)),                                           // unknown kind
            [.. Frame(0, (0, 512, 1, 0)), 0],                                   // trailing byte
            Frame(0, (0, 512, 1, 0)).AsSpan(0, 15).ToArray(),                    // truncated entry (count says 1)
        ];
        foreach (var frame in hostile)
            Assert.Throws<MigrationException>(() => receiver.Apply(frame));
        var content = new byte[Size];
        disk.Read(0, content);
        Assert.DoesNotContain(content, b => b != 0);
        receiver.Apply(Frame(0, (40 * (ulong)Block, 1024, 0, 1024)));        // the short last block, exactly
        disk.Read(0, content);
        Assert.Equal(1024, content.Count(b => b == 0xab));
    }

    private static byte[] Table(params (ulong Capacity, byte Flags, byte Format)[] disks) =>
        Table(disks.Select(d => (d.Capacity, d.Flags, d.Format, default(FileIdentity))).ToArray());

    private static byte[] Table(params (ulong Capacity, byte Flags, byte Format, FileIdentity Identity)[] disks)
    {
        const int entry = DiskStreaming.TableEntry;
        var table = new byte[4 + disks.Length * entry];
        BinaryPrimitives.WriteUInt32LittleEndian(table, (uint)disks.Length);
        for (int i = 0; i < disks.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(table.AsSpan(4 + i * entry), disks[i].Capacity);
            table[12 + i * entry] = disks[i].Flags;
            table[13 + i * entry] = disks[i].Format;
            disks[i].Identity.WriteTo(table.AsSpan(14 + i * entry));
        }
        return table;
    }

    [Fact]
    public void DestinationRefusesToWriteTheSourcesOwnImage()
    {
        string shared = NewRaw("shared.raw"), other = NewRaw("other.raw");
        string link = Path.Combine(_dir, "link.raw");
        File.CreateSymbolicLink(link, shared);
        var table = Table((Size, (byte)1, (byte)0, FileIdentity.Of(shared)));
        var e = Assert.Throws<MigrationException>(() => DiskReceiver.Prepare(table, Config(new DiskSpec { Path = link })));
        Assert.Contains("the source's own image", e.Message);
        Assert.NotNull(DiskReceiver.Prepare(table, Config(new DiskSpec { Path = other })));
    }

    private static VmSpec Config(params DiskSpec[] disks) => new() { Boot = new BootSpec { Kernel = "/none" }, Disks = disks };

    [Fact]
    public void DestinationCreatesAbsentImagesWithTheSourceShapeAndRemovesThem()
    {
        string raw = Path.Combine(_dir, "new.raw"), qcow = Path.Combine(_dir, "new.qcow2"), ro = NewRaw("ro.raw");
        var receiver = DiskReceiver.Prepare(Table((Size, 1, 0), (3 << 20, 1, 1), (Size, 0, 0)),
            Config(new DiskSpec { Path = raw }, new DiskSpec { Path = qcow }, new DiskSpec { Path = ro, ReadOnly = true }))!;
        Assert.Equal([raw, qcow], receiver.Created);
        Assert.Equal((long)Size, new FileInfo(raw).Length);
        Assert.Equal("qcow2", DiskImage.Probe(qcow));
        using (var q = DiskImage.Open(qcow, null, readOnly: true))
            Assert.Equal(3UL << 20, q.Capacity);
        receiver.RemoveCreated();
        Assert.False(File.Exists(raw));
        Assert.False(File.Exists(qcow));
        Assert.True(File.Exists(ro));
        Assert.Null(DiskReceiver.Prepare([], Config()));
    }

    [Fact]
    public void DestinationRefusesADiskTableThatDoesNotFitAndLeavesNothing()
    {
        string created = Path.Combine(_dir, "created.raw"), small = NewRaw("small.raw", 4096);
        string ro = NewRaw("ro.raw");
        (byte[] Table, VmSpec Config, string Why)[] cases =
        [
            ([1, 0], Config(), "short"),
            (Table((Size, 1, 0))[..^1], Config(new DiskSpec { Path = created }), "malformed"),
            (Table((Size, 1, 0)), Config(), "1 disks"),
            (Table((Size, 1, 0), (Size, 1, 0)), Config(new DiskSpec { Path = created }, new DiskSpec { Path = small }), "has 4096 bytes here"),
            (Table((Size, 1, 0), (Size, 1, 0)), Config(new DiskSpec { Path = created }, new DiskSpec { Path = ro, ReadOnly = true }), "read-only here"),
            (Table((0, 1, 0)), Config(new DiskSpec { Path = created }), "capacity 0"),
            (Table((ulong.MaxValue, 1, 0)), Config(new DiskSpec { Path = created }), "capacity"),
            (Table((Size, 2, 0)), Config(new DiskSpec { Path = created }), "flags"),
            (Table((Size, 1, 7)), Config(new DiskSpec { Path = created }), "format"),
        ];
        foreach (var (table, config, why) in cases)
        {
            var e = Assert.Throws<MigrationException>(() => DiskReceiver.Prepare(table, config));
            Assert.Contains(why, e.Message);
            Assert.False(File.Exists(created), $"{why}: the image created for the first disk stayed behind");
        }
    }
}
