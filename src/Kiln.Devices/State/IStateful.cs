namespace Kiln.Devices.State;

/// <summary>Anything whose state must survive a snapshot or a migration. Save writes a self-contained section;
/// Restore reads exactly what Save wrote (and refuses a section of another version with a clear error).</summary>
public interface IStateful
{
    /// <summary>A stable name for the section (e.g. "serial@3f8").</summary>
    string StateId { get; }

    void SaveState(StateWriter writer);

    void RestoreState(StateReader reader);
}
