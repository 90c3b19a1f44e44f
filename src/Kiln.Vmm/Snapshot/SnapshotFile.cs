using Kiln.Contracts.Snapshot;
using Kiln.Contracts.Spec;
using Kiln.Memory;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Vmm.Snapshot;

/// <summary>An opened, checked snapshot file (layout and checking policy in <see cref="SnapshotFormat"/>, the reading
/// in <see cref="SnapshotHeader"/>). Opening reads only the small sections; guest RAM stays in the file until
/// <see cref="MapMemory"/> maps it.</summary>
public sealed class SnapshotFile : IDisposable
{
    private readonly SafeFileHandle _file;
    private readonly SnapshotHeader _header;

    private SnapshotFile(string path, SafeFileHandle file, SnapshotHeader header)
    {
        Path = path;
        _file = file;
        _header = header;
    }

    public string Path { get; }
    public SnapshotInfo Info => _header.Info;

    /// <summary>The spec of the machine that was saved.</summary>
    public VmSpec Spec => _header.Spec;
    public byte[] MachineState => _header.MachineState;
    public IReadOnlyList<SnapshotRamExtent> Ram => _header.Ram;
    public ulong RamBytes => _header.RamBytes;

    /// <summary>Opens and checks <paramref name="path"/>; anything wrong is one <see cref="SnapshotException"/>.</summary>
    public static SnapshotFile Open(string path)
    {
        var file = SnapshotHeader.OpenFile(path);
        try
        {
            return new SnapshotFile(path, file, SnapshotHeader.Read(path, file));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Guest RAM mapped copy-on-write from the file: nothing is read until the guest touches it.</summary>
    public GuestMemory MapMemory() =>
        GuestMemory.MapFile(_file, Ram.Select(r => (new GuestAddress(r.Start), r.Size, r.FileOffset)));

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
                    throw new SnapshotException($"snapshot truncated inside the RAM section at {new GuestAddress(section.Start)}");
                crc = Crc32C.Append(crc, buffer.AsSpan(0, got));
                done += (ulong)got;
            }
            if (Crc32C.Finish(crc) != section.Crc)
                throw new SnapshotException($"snapshot corrupt: the RAM section at {new GuestAddress(section.Start)} fails its CRC");
        }
    }

    public void Dispose() => _file.Dispose();
}
