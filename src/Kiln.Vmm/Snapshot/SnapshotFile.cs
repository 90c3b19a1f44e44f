using Kiln.Memory;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Vmm.Snapshot;

/// <summary>An opened, checked snapshot file (layout and checking policy in <see cref="SnapshotFormat"/>). Opening
/// reads only the small sections; guest RAM stays in the file until <see cref="MapMemory"/> maps it.</summary>
public sealed class SnapshotFile : IDisposable
{
    private readonly SafeFileHandle _file;

    private SnapshotFile(string path, SafeFileHandle file, SnapshotInfo info, SnapshotConfig config, byte[] machineState,
        IReadOnlyList<SnapshotRamSection> ram)
    {
        Path = path;
        _file = file;
        Info = info;
        Config = config;
        MachineState = machineState;
        Ram = ram;
    }

    public string Path { get; }
    public SnapshotInfo Info { get; }
    public SnapshotConfig Config { get; }
    public byte[] MachineState { get; }
    public IReadOnlyList<SnapshotRamSection> Ram { get; }
    public ulong RamBytes => Ram.Aggregate(0UL, (sum, r) => sum + r.Size);

    /// <summary>Opens and checks <paramref name="path"/>; anything wrong is one <see cref="SnapshotException"/>.</summary>
    public static SnapshotFile Open(string path)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SnapshotException($"cannot open snapshot {path}: {e.Message}", e);
        }
        try
        {
            return Read(path, file);
        }
        catch (Exception e)
        {
            file.Dispose();
            if (e is IOException io)
                throw new SnapshotException($"cannot read snapshot {path}: {io.Message}", io);
            throw;
        }
    }

    private static SnapshotFile Read(string path, SafeFileHandle file)
    {
        long length = RandomAccess.GetLength(file);
        var fileHeader = new byte[SnapshotFormat.FileHeaderSize];
        int got = RandomAccess.Read(file, fileHeader, 0);
        SnapshotFormat.CheckFileHeader(fileHeader.AsSpan(0, got));
        byte[]? info = null, config = null, state = null;
        var ram = new List<SnapshotRamSection>();
        long offset = SnapshotFormat.FileHeaderSize;
        var headerBytes = new byte[SnapshotSectionHeader.Size];
        while (true)
        {
            got = RandomAccess.Read(file, headerBytes, offset);
            if (got == 0)
                throw new SnapshotException($"snapshot truncated: it ends at offset {offset} without an end section");
            var header = SnapshotSectionHeader.Read(headerBytes.AsSpan(0, got), offset);
            long payload = SnapshotFormat.PayloadOffset(header.Type, offset);
            if (header.Length > (ulong)(long.MaxValue - payload) || payload + (long)header.Length > length)
                throw new SnapshotException(
                    $"snapshot truncated: {header.Type} section at offset {offset} needs {header.Length:#,0} bytes past {payload}, the file has {length:#,0}");
            if (header.Type == SnapshotSectionType.End)
                break;
            if (header.Type == SnapshotSectionType.Ram)
            {
                if (header.Length == 0 || header.Length % (ulong)SnapshotFormat.PageSize != 0 || header.Param % (ulong)SnapshotFormat.PageSize != 0)
                    throw new SnapshotException($"snapshot corrupt: RAM section at offset {offset} is not page-sized or page-aligned");
                ram.Add(new SnapshotRamSection(new GuestAddress(header.Param), header.Length, payload, header.Crc));
            }
            else
            {
                if (header.Length > SnapshotFormat.MaxSmallSectionBytes)
                    throw new SnapshotException($"snapshot corrupt: {header.Type} section claims {header.Length:#,0} bytes");
                var data = new byte[header.Length];
                if (RandomAccess.Read(file, data, payload) != data.Length)
                    throw new SnapshotException($"snapshot truncated inside the {header.Type} section");
                if (Crc32C.Compute(data) != header.Crc)
                    throw new SnapshotException($"snapshot corrupt: the {header.Type} section fails its CRC");
                if ((header.Type switch { SnapshotSectionType.Info => info, SnapshotSectionType.Config => config, _ => state }) is not null)
                    throw new SnapshotException($"snapshot corrupt: two {header.Type} sections");
                switch (header.Type)
                {
                    case SnapshotSectionType.Info: info = data; break;
                    case SnapshotSectionType.Config: config = data; break;
                    default: state = data; break;
                }
            }
            offset = payload + (long)header.Length;
        }
        if (info is null || config is null || state is null || ram.Count == 0)
            throw new SnapshotException("snapshot incomplete: it lacks its info, config, machine state or RAM section");
        return new SnapshotFile(path, file, SnapshotInfo.FromJson(info), SnapshotConfig.FromJson(config), state, ram);
    }

    /// <summary>Guest RAM mapped copy-on-write from the file: nothing is read until the guest touches it.</summary>
    public GuestMemory MapMemory() =>
        GuestMemory.MapFile(_file, Ram.Select(r => (r.Start, r.Size, r.FileOffset)));

    /// <summary>Reads every RAM section and checks its CRC (what the open skips to keep the restore lazy).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void VerifyRam()
    {
        var buffer = new byte[1 << 20];
        foreach (var section in Ram)
        {
            uint crc = Crc32C.Start;
            for (ulong done = 0; done < section.Size;)
            {
                int want = (int)Math.Min((ulong)buffer.Length, section.Size - done);
                int got = RandomAccess.Read(_file, buffer.AsSpan(0, want), section.FileOffset + (long)done);
                if (got != want)
                    throw new SnapshotException($"snapshot truncated inside the RAM section at {section.Start}");
                crc = Crc32C.Append(crc, buffer.AsSpan(0, got));
                done += (ulong)got;
            }
            if (Crc32C.Finish(crc) != section.Crc)
                throw new SnapshotException($"snapshot corrupt: the RAM section at {section.Start} fails its CRC");
        }
    }

    public void Dispose() => _file.Dispose();
}
