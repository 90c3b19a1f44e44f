using Kiln.Contracts.Snapshot;
using Kiln.Contracts.Spec;
using System.Buffers.Binary;
using Kiln.Memory;
using Kiln.Vmm;
using Kiln.Vmm.Snapshot;

namespace Kiln.Tests.Vmm.Snapshot;

/// <summary>The snapshot file format without KVM: a round trip through anonymous guest memory, and every kind of
/// damage refused with one clear <see cref="SnapshotException"/>.</summary>
public sealed class SnapshotFormatTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-snapfmt-").FullName;
    private readonly byte[] _state = [.. Enumerable.Range(0, 3000).Select(i => (byte)(i * 7))];

    private static readonly VmSpec Config = new()
    {
        Boot = new BootSpec { Kernel = "/boot/kernel", CommandLine = "console=ttyS0 x=1" },
        Machine = new MachineSpec { MemoryBytes = 4UL << 20, Cpus = 2, Transport = VirtioTransport.Mmio },
        Disks = [new DiskSpec { Path = "/var/disk.qcow2", ReadOnly = true, Serial = "s1", Format = "qcow2" }],
        Nics = [Kiln.Cli.NicOptionParser.Parse("tap=tap7,mac=52:54:00:12:34:56,bridge=br0")],
        Devices = new DeviceSpec { Rng = true, DebugExitPort = null }, Console = ConsoleKind.Virtio,
    };

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 4 MiB guest whose RAM is mostly zero, with a few patterned pages.</summary>
    private string WriteSample(out byte[] ram)
    {
        using var memory = GuestMemory.Create(X86MemoryLayout.RamRegions(Config.Machine.MemoryBytes));
        var rng = new Random(5);
        foreach (ulong page in new ulong[] { 0, 1, 7, 300, 1023 })
        {
            var data = new byte[4096];
            rng.NextBytes(data);
            memory.Write(new GuestAddress(page * 4096), data);
        }
        ram = memory.GetSpan(new GuestAddress(0), (int)Config.Machine.MemoryBytes).ToArray();
        string path = Path.Combine(_dir, "vm.ksnap");
        var result = SnapshotWriter.Write(path, new SnapshotInfo { SavedAtUnixNs = 12345, Name = "vm1" },
            Config, _state, memory);
        Assert.Equal(5 * 4096, result.RamDataBytes);
        return path;
    }

    [Fact]
    public void Crc32CMatchesTheStandardCheckValue() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));

    [Fact]
    public void RoundTripRestoresConfigStateAndRam()
    {
        string path = WriteSample(out var ram);
        using var snapshot = SnapshotFile.Open(path);
        Assert.Equal(12345, snapshot.Info.SavedAtUnixNs);
        Assert.Equal("vm1", snapshot.Info.Name);
        Assert.Equal(_state, snapshot.MachineState);
        var config = snapshot.Spec;
        Assert.Equal(Config.Boot.Kernel, config.Boot.Kernel);
        Assert.Equal(Config.Boot.CommandLine, config.Boot.CommandLine);
        Assert.Equal(Config.Machine.MemoryBytes, config.Machine.MemoryBytes);
        Assert.Equal(2, config.Machine.Cpus);
        Assert.Null(config.Devices.DebugExitPort);
        Assert.Equal(Config.Disks, config.Disks);
        Assert.Equal(Config.Nics, config.Nics);
        Assert.True(config.Devices.Rng);
        Assert.Equal(ConsoleKind.Virtio, config.Console);
        Assert.Equal(VirtioTransport.Mmio, config.Machine.Transport);
        snapshot.VerifyRam();
        Assert.All(snapshot.Ram, r => Assert.Equal(0, r.FileOffset % 4096));
        using var mapped = snapshot.MapMemory();
        Assert.True(mapped.Regions[0].IsFileBacked);
        Assert.Equal(ram, mapped.GetSpan(new GuestAddress(0), ram.Length).ToArray());
        // Copy-on-write: the guest's writes never reach the file.
        mapped.Write(new GuestAddress(4096), new byte[] { 1, 2, 3 });
        using var again = SnapshotFile.Open(path);
        again.VerifyRam();
    }

    [Fact]
    public void ZeroPagesAreHolesInTheFile()
    {
        string path = WriteSample(out _);
        // du-style: blocks actually allocated, via `stat`; a 4 MiB RAM with 5 used pages must stay far below 4 MiB.
        var info = new FileInfo(path);
        Assert.True(info.Length > 4L << 20);
        long allocated = AllocatedBytes(path);
        Assert.True(allocated < 1L << 20, $"{allocated} bytes allocated for a mostly empty guest");
    }

    private static long AllocatedBytes(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var parts = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }

    [Fact]
    public void BadMagicIsRefused()
    {
        string path = WriteSample(out _);
        Patch(path, 0, "X"u8);
        Assert.Contains("bad magic", Refused(path));
    }

    [Fact]
    public void NotASnapshotAtAllIsRefused()
    {
        string path = Path.Combine(_dir, "text");
        File.WriteAllText(path, "hello world, this is not a snapshot");
        Assert.Contains("bad magic", Refused(path));
        File.WriteAllBytes(path, []);
        Assert.Contains("bad magic", Refused(path));
        Assert.Contains("cannot open", Refused(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void AnotherVersionIsRefusedByName()
    {
        string path = WriteSample(out _);
        var header = File.ReadAllBytes(path)[..16];
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), Crc32C.Compute(header.AsSpan(0, 12)));
        Patch(path, 0, header);
        Assert.Contains("version 2 is not supported", Refused(path));
    }

    [Fact]
    public void EveryFlippedByteOutsideRamIsRefused()
    {
        string path = WriteSample(out _);
        var original = File.ReadAllBytes(path);
        long firstRam = FirstRamPayload(path);
        // Everything before the first RAM payload: file header, section headers, JSON, machine state, padding of
        // the RAM section header (padding is not covered: skip it).
        int ramHeader = (int)firstRam - 4096;
        var covered = Enumerable.Range(0, ramHeader + 32).Where(i => i % 7 == 0 || i < 64);
        foreach (int i in covered)
        {
            var bad = (byte[])original.Clone();
            bad[i] ^= 0x40;
            File.WriteAllBytes(path, bad);
            Assert.IsType<SnapshotException>(Record.Exception(() => SnapshotFile.Open(path).Dispose()));
        }
        // The End section's header at the very end.
        var tail = (byte[])original.Clone();
        tail[^10] ^= 1;
        File.WriteAllBytes(path, tail);
        Assert.IsType<SnapshotException>(Record.Exception(() => SnapshotFile.Open(path).Dispose()));
    }

    [Fact]
    public void AFlippedRamByteIsFoundByVerify()
    {
        string path = WriteSample(out _);
        long ram = FirstRamPayload(path);
        Patch(path, ram + 7 * 4096 + 100, [0x55]);
        using var snapshot = SnapshotFile.Open(path); // lazy: the open does not read RAM
        var e = Assert.Throws<SnapshotException>(snapshot.VerifyRam);
        Assert.Contains("fails its CRC", e.Message);
    }

    [Fact]
    public void EveryTruncationIsRefused()
    {
        string path = WriteSample(out _);
        var original = File.ReadAllBytes(path);
        foreach (int length in new[] { 3, 15, 16, 20, 47, 48, 100, 400, 4096, original.Length / 2, original.Length - 33, original.Length - 32, original.Length - 1 })
        {
            File.WriteAllBytes(path, original[..length]);
            Assert.Contains("truncated", Refused(path), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void BadConfigJsonIsRefused()
    {
        string path = Path.Combine(_dir, "bad.ksnap");
        using var memory = GuestMemory.Create(X86MemoryLayout.RamRegions(1UL << 20));
        string json = VmSpecJson.ToJson(Config with { Machine = Config.Machine with { MemoryBytes = 1UL << 20 } })
            .Replace("\"console\":\"virtio\"", "\"console\":\"teletype\"", StringComparison.Ordinal);
        SnapshotWriter.Write(path, new SnapshotInfo(), System.Text.Encoding.UTF8.GetBytes(json), _state, memory);
        Assert.Contains("console 'teletype'", Assert.Throws<SnapshotException>(() => SnapshotFile.Open(path)).Message);
    }

    [Fact]
    public void SectionsOnAStreamRoundTripAndCatchDamage()
    {
        var stream = new MemoryStream();
        SnapshotSectionStream.Write(stream, SnapshotSectionType.MachineState, _state);
        stream.Position = 0;
        var (header, payload) = SnapshotSectionStream.Read(stream);
        Assert.Equal(SnapshotSectionType.MachineState, header.Type);
        Assert.Equal(_state, payload);

        var bytes = stream.ToArray();
        bytes[40] ^= 1;
        Assert.Contains("CRC", Assert.Throws<SnapshotException>(() => SnapshotSectionStream.Read(new MemoryStream(bytes))).Message);
        Assert.Contains("ended", Assert.Throws<SnapshotException>(() => SnapshotSectionStream.Read(new MemoryStream(stream.ToArray()[..100]))).Message);
        Assert.Contains("exceeds", Assert.Throws<SnapshotException>(() => SnapshotSectionStream.Read(new MemoryStream(stream.ToArray()), maxLength: 10)).Message);
    }

    [Fact]
    public void WritingOverTheSnapshotAMachineRunsFromLeavesItsMappingIntact()
    {
        string path = WriteSample(out var ram);
        using var snapshot = SnapshotFile.Open(path);
        using var mapped = snapshot.MapMemory();
        using (var other = GuestMemory.Create(X86MemoryLayout.RamRegions(Config.Machine.MemoryBytes)))
        {
            other.Fill(new GuestAddress(0), Config.Machine.MemoryBytes, 0xAA);
            SnapshotWriter.Write(path, new SnapshotInfo(), Config, _state, other);
        }
        Assert.Equal(ram, mapped.GetSpan(new GuestAddress(0), ram.Length).ToArray());
    }

    private static long FirstRamPayload(string path)
    {
        using var snapshot = SnapshotFile.Open(path);
        return snapshot.Ram[0].FileOffset;
    }

    private static string Refused(string path) =>
        Assert.IsType<SnapshotException>(Record.Exception(() => SnapshotFile.Open(path).Dispose())).Message;

    private static void Patch(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.Write(f, bytes, offset);
    }
}

public sealed class Crc32CZerosTests
{
    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(7UL)]
    [InlineData(4096UL)]
    [InlineData(1234567UL)]
    public void AppendingZerosEqualsScanningThem(ulong count)
    {
        uint seed = Crc32C.Append(Crc32C.Start, "prefix"u8);
        Assert.Equal(Crc32C.Append(seed, new byte[count]), Crc32C.AppendZeros(seed, count));
    }
}
