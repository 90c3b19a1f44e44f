namespace Kiln.Contracts.Snapshot;

/// <summary>What a section holds. Values are part of the file format: never renumber.</summary>
public enum SnapshotSectionType : uint
{
    /// <summary>UTF-8 JSON of <see cref="SnapshotInfo"/>: when and by what the snapshot was written.</summary>
    Info = 1,

    /// <summary>UTF-8 JSON of the <see cref="Spec.VmSpec"/> the machine was built from (older files: its legacy form, read by <see cref="LegacySnapshotConfig"/>).</summary>
    Config = 2,

    /// <summary>the VMM's machine state bytes: vCPUs, irqchip, PIT, clock, every device.</summary>
    MachineState = 3,

    /// <summary>One guest RAM region; its guest-physical start is in the section header's Param field. The payload
    /// starts on a 4 KiB boundary so it can be mapped straight into the guest; all-zero pages are holes.</summary>
    Ram = 4,

    /// <summary>The last section, empty: a file cut at a section boundary is still seen as truncated.</summary>
    End = 0xFFFF,
}
