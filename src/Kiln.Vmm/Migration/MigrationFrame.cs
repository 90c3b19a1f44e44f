namespace Kiln.Vmm.Migration;

/// <summary>The migration stream: after the handshake (<see cref="MigrationAuth"/>) both sides exchange frames of
/// [type: u8][length: u32 LE][payload]. Source to destination: Hello, Spec, Pages* and DiskBlocks* (copy-storage) with a
/// Sync after each pre-copy round, State, then Go once the destination said Ready; destination to source: Synced for
/// each Sync, Ready, then Resumed once its vCPUs run. Either side may send Abort with a
/// UTF-8 reason instead.</summary>
public enum MigrationFrame : byte
{
    /// <summary>u32 version, u64 RAM bytes, u32 vCPUs: the destination refuses a machine of another shape. With
    /// copy-storage a disk table follows (<see cref="DiskStreaming.HelloExtension"/>).</summary>
    Hello = 1,

    /// <summary>Guest pages: a table of addresses, then the data (<see cref="PageFrame"/>).</summary>
    Pages = 2,

    /// <summary>The machine's device and CPU state (<see cref="Machine.SaveState"/>).</summary>
    State = 3,

    /// <summary>Destination: state restored, ready to run.</summary>
    Ready = 4,

    /// <summary>Source: committed; the destination may run the guest.</summary>
    Go = 5,

    /// <summary>Destination: the guest runs here now.</summary>
    Resumed = 6,

    /// <summary>UTF-8 reason; the sender gives up.</summary>
    Abort = 7,

    /// <summary>Copy-storage: u32 disk index, u32 count, then count x (u64 offset, u32 length, u8 kind: 0 data +
    /// length bytes, 1 zero range) (<see cref="DiskReceiver.Apply"/>).</summary>
    DiskBlocks = 8,

    /// <summary>Source, at the end of a pre-copy round: answer Synced once everything before this is applied.</summary>
    Sync = 9,

    /// <summary>Destination: everything before the Sync is applied.</summary>
    Synced = 10,

    /// <summary>Source, right after Hello: the UTF-8 JSON of the guest's <see cref="Contracts.Spec.VmSpec"/>, so the
    /// destination refuses a machine of another shape before any page moves (<see cref="SpecHandshake"/>).</summary>
    Spec = 11,
}
