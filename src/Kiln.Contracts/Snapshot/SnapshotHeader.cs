using System.Text.Json;
using Kiln.Contracts.Spec;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Contracts.Snapshot;

/// <summary>Where one guest RAM region lies in a snapshot file, and its CRC-32C (checked only on request).</summary>
public sealed record SnapshotRamExtent(ulong Start, ulong Size, long FileOffset, uint Crc);

/// <summary>Everything of a snapshot file but its RAM: the checked small sections and where each RAM region lies
/// (layout and checking policy in <see cref="SnapshotFormat"/>). Reading it reads only the small sections, so a
/// daemon can look into a snapshot (which domain, which machine) without mapping guest memory.</summary>
public sealed record SnapshotHeader(SnapshotInfo Info, VmSpec Spec, byte[] MachineState, IReadOnlyList<SnapshotRamExtent> Ram)
{
    public ulong RamBytes => Ram.Aggregate(0UL, (sum, r) => sum + r.Size);

    /// <summary>Opens, reads and checks <paramref name="path"/>; anything wrong is one <see cref="SnapshotException"/>.</summary>
    public static SnapshotHeader ReadFile(string path)
    {
        using var file = OpenFile(path);
        return Read(path, file);
    }

    public static SafeFileHandle OpenFile(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SnapshotException($"cannot open snapshot {path}: {e.Message}", e);
        }
    }

    /// <summary>Reads and checks an open snapshot file (<paramref name="path"/> only names it in errors).</summary>
    public static SnapshotHeader Read(string path, SafeFileHandle file)
    {
        try
        {
            return ReadSections(file);
        }
        catch (IOException e)
        {
            throw new SnapshotException($"cannot read snapshot {path}: {e.Message}", e);
        }
    }

    private static SnapshotHeader ReadSections(SafeFileHandle file)
    {
        long length = RandomAccess.GetLength(file);
        var fileHeader = new byte[SnapshotFormat.FileHeaderSize];
        int got = RandomAccess.Read(file, fileHeader, 0);
        SnapshotFormat.CheckFileHeader(fileHeader.AsSpan(0, got));
        byte[]? info = null, config = null, state = null;
        var ram = new List<SnapshotRamExtent>();
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
                ram.Add(new SnapshotRamExtent(header.Param, header.Length, payload, header.Crc));
            }
            else
            {
                var data = ReadSmall(file, header, payload);
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
        return new SnapshotHeader(SnapshotInfo.FromJson(info), ParseConfig(config), state, ram);
    }

    private static byte[] ReadSmall(SafeFileHandle file, SnapshotSectionHeader header, long payload)
    {
        if (header.Length > SnapshotFormat.MaxSmallSectionBytes)
            throw new SnapshotException($"snapshot corrupt: {header.Type} section claims {header.Length:#,0} bytes");
        var data = new byte[header.Length];
        if (RandomAccess.Read(file, data, payload) != data.Length)
            throw new SnapshotException($"snapshot truncated inside the {header.Type} section");
        if (Crc32C.Compute(data) != header.Crc)
            throw new SnapshotException($"snapshot corrupt: the {header.Type} section fails its CRC");
        return data;
    }

    /// <summary>The Config section: a <see cref="VmSpec"/> (it has a "version"), or the flat form of older files.</summary>
    public static VmSpec ParseConfig(ReadOnlySpan<byte> json)
    {
        try
        {
            bool isSpec;
            using (var doc = JsonDocument.Parse(json.ToArray()))
                isSpec = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("version", out _);
            if (isSpec)
                return VmSpecJson.Parse(json);
            var legacy = JsonSerializer.Deserialize(json, SnapshotJsonContext.Default.LegacySnapshotConfig)
                         ?? throw new VmSpecException("$", "null");
            return VmSpecValidator.Check(legacy.ToSpec());
        }
        catch (JsonException e)
        {
            throw new SnapshotException($"snapshot config is not valid JSON: {e.Message}");
        }
        catch (VmSpecException e)
        {
            throw new SnapshotException($"snapshot config is invalid: {string.Join("; ", e.Errors.Select(x => $"{x.Field} {x.Message}"))}", e);
        }
    }
}
