using Kiln.Contracts.Snapshot;
using Kiln.Contracts.Spec;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Kiln.Memory;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Vmm.Snapshot;

/// <summary>What writing a snapshot took.</summary>
public sealed record SnapshotWriteResult(long FileBytes, long RamBytes, long RamDataBytes, TimeSpan Elapsed);

/// <summary>Writes a snapshot file (layout in <see cref="SnapshotFormat"/>). The file is written under a temporary
/// name and renamed into place at the end, so a crash leaves no half snapshot under the real name, and a VM
/// restored from the same path keeps its (mapped) old file intact.</summary>
public static class SnapshotWriter
{
    private const int ChunkBytes = 1 << 20;
    private static readonly byte[] Zeros = new byte[SnapshotFormat.PageSize];

    /// <param name="memory">Guest RAM, which must not change while this runs (the machine is paused).</param>
    public static SnapshotWriteResult Write(string path, SnapshotInfo info, VmSpec spec, byte[] machineState,
        GuestMemory memory) => Write(path, info, VmSpecJson.ToUtf8(spec), machineState, memory);

    /// <summary>The same with the Config section given as bytes (tests write damaged ones).</summary>
    internal static SnapshotWriteResult Write(string path, SnapshotInfo info, byte[] config, byte[] machineState,
        GuestMemory memory)
    {
        var clock = Stopwatch.StartNew();
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        long ramData = 0;
        long length;
        try
        {
            using (var file = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                Span<byte> header = stackalloc byte[SnapshotFormat.FileHeaderSize];
                SnapshotFormat.WriteFileHeader(header);
                RandomAccess.Write(file, header, 0);
                long offset = SnapshotFormat.FileHeaderSize;
                offset = WriteSmall(file, offset, SnapshotSectionType.Info, info.ToJson());
                offset = WriteSmall(file, offset, SnapshotSectionType.Config, config);
                offset = WriteSmall(file, offset, SnapshotSectionType.MachineState, machineState);
                foreach (var region in memory.Regions)
                    offset = WriteRam(file, offset, memory, region, ref ramData);
                offset = WriteSmall(file, offset, SnapshotSectionType.End, []);
                // Trailing holes of the last region were never written; the length makes them part of the file.
                RandomAccess.SetLength(file, offset);
                length = offset;
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw new SnapshotException($"cannot write snapshot {path}: {e.Message}", e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        return new SnapshotWriteResult(length, (long)memory.TotalSize, ramData, clock.Elapsed);
    }

    private static long WriteSmall(SafeFileHandle file, long offset, SnapshotSectionType type, byte[] payload)
    {
        Span<byte> header = stackalloc byte[SnapshotSectionHeader.Size];
        new SnapshotSectionHeader(type, (ulong)payload.Length, 0, Crc32C.Compute(payload)).Write(header);
        RandomAccess.Write(file, header, offset);
        RandomAccess.Write(file, payload, offset + SnapshotSectionHeader.Size);
        return offset + SnapshotSectionHeader.Size + payload.Length;
    }

    /// <summary>Writes one region page-aligned, skipping all-zero pages (holes), and its CRC over all its bytes.
    /// Pages the guest never touched are not even read (<see cref="PopulatedPages"/>): their CRC contribution is
    /// computed, not scanned. The header goes last, once the CRC is known.</summary>
    private static long WriteRam(SafeFileHandle file, long headerOffset, GuestMemory memory, GuestRegion region, ref long written)
    {
        long payload = SnapshotFormat.PayloadOffset(SnapshotSectionType.Ram, headerOffset);
        uint crc = Crc32C.Start;
        ulong position = 0;
        foreach (var (start, length) in PopulatedPages.Ranges(region))
        {
            crc = Crc32C.AppendZeros(crc, start - position);
            crc = WriteRange(file, payload, memory, region, start, length, crc, ref written);
            position = start + length;
        }
        crc = Crc32C.AppendZeros(crc, region.Size - position);
        Span<byte> header = stackalloc byte[SnapshotSectionHeader.Size];
        new SnapshotSectionHeader(SnapshotSectionType.Ram, region.Size, region.Start.Value, Crc32C.Finish(crc)).Write(header);
        RandomAccess.Write(file, header, headerOffset);
        return payload + (long)region.Size;
    }

    /// <summary>Writes [start, start+length) of a region, each run of non-zero pages with one call. Optimized from
    /// the first call (see <see cref="Crc32C.Append"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static uint WriteRange(SafeFileHandle file, long payload, GuestMemory memory, GuestRegion region, ulong start,
        ulong length, uint crc, ref long written)
    {
        int page = (int)SnapshotFormat.PageSize;
        for (ulong done = 0; done < length;)
        {
            int chunkLength = (int)Math.Min((ulong)ChunkBytes, length - done);
            ulong chunkOffset = start + done;
            ReadOnlySpan<byte> chunk = memory.GetSpan(region.Start + chunkOffset, chunkLength);
            crc = Crc32C.Append(crc, chunk);
            for (int at = 0; at < chunkLength;)
            {
                if (IsZero(chunk.Slice(at, page)))
                {
                    at += page;
                    continue;
                }
                int runEnd = at + page;
                while (runEnd < chunkLength && !IsZero(chunk.Slice(runEnd, page)))
                    runEnd += page;
                RandomAccess.Write(file, chunk[at..runEnd], payload + (long)chunkOffset + at);
                written += runEnd - at;
                at = runEnd;
            }
            done += (ulong)chunkLength;
        }
        return crc;
    }

    private static bool IsZero(ReadOnlySpan<byte> page) => page.SequenceEqual(Zeros);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
