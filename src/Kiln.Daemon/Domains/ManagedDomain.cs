using System.Diagnostics;
using System.Net.Sockets;

namespace Kiln.Daemon.Domains;

/// <summary>One domain as the daemon holds it: its definition, its state and why, and while it runs its VMM (the
/// runtime record, the child process when the daemon started it, the watch connection). <see cref="Gate"/>
/// serializes the operations that start or end it; <see cref="Ended"/> completes when its VMM ends.</summary>
public sealed class ManagedDomain(DomainDefinition definition)
{
    public DomainDefinition Definition { get; set; } = definition;
    public DomainState State { get; set; } = DomainState.ShutOff;
    public string? Reason { get; set; }
    public RuntimeRecord? Runtime { get; set; }
    public Process? Child { get; set; }
    public Socket? Watch { get; set; }
    public bool Stopping { get; set; }
    public bool Removed { get; set; }
    public readonly SemaphoreSlim Gate = new(1, 1);
    public TaskCompletionSource Ended { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
