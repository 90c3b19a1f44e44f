using Kiln.Memory;

namespace Kiln.Vmm.Snapshot;

/// <summary>Where one guest RAM region lies in a snapshot file, and its CRC-32C (checked only on request).</summary>
public sealed record SnapshotRamSection(GuestAddress Start, ulong Size, long FileOffset, uint Crc);
