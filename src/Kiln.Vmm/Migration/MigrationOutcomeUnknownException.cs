namespace Kiln.Vmm.Migration;

/// <summary>The link failed after the source sent Go (the commit point) and before the destination confirmed that
/// the guest runs there: the destination may or may not be running it. The source must not resume on its own (two
/// running copies of one guest, writing the same disks, are worse than a paused one), so it stays paused, like
/// QEMU's postmigrate state, until someone who can see the destination decides.</summary>
public sealed class MigrationOutcomeUnknownException(string cause, Exception? inner = null)
    : MigrationException(
        $"migration outcome unknown: the destination may be running the guest ({cause}); this VMM stays paused: " +
        "`kiln resume` it only if the destination is not running the guest", inner);
