namespace Kiln.Vmm.Host;

/// <summary>Tells whoever launched this VMM (the daemon, through a pipe) once whether the VM runs: after the control
/// socket is up and the first machine is built (an incoming migration: listening), or why it could not start.
/// Later calls do nothing.</summary>
public interface ILaunchReporter
{
    void Started();

    void Failed(Exception error);
}
