namespace Kiln.Vmm.Migration;

/// <summary>How the source migrates: where to, the token, TLS, the downtime budget and the convergence bounds.</summary>
public sealed record MigrationOptions(MigrationEndpoint Destination, string Token)
{
    public bool Tls { get; init; }

    /// <summary>The longest pause the guest may see: pre-copy continues until the rest fits it (default 300 ms).</summary>
    public TimeSpan MaxDowntime { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>The most pre-copy may send per second; null: as fast as the link goes. A guest that dirties memory
    /// faster than this cannot converge, which is how a test makes non-convergence certain.</summary>
    public double? MaxBandwidthBytesPerSecond { get; init; }

    /// <summary>A socket that moves no byte for this long counts as a cut link.</summary>
    public TimeSpan IoTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Pre-copy rounds before the migration gives up (auto-converge throttles the vCPUs well before).</summary>
    public int MaxRounds { get; init; } = 30;

    /// <summary>Also stream the writable disks (<see cref="DiskStreaming"/>) instead of assuming shared storage.</summary>
    public bool CopyStorage { get; init; }
}

/// <summary>One progress report: sent after each pre-copy round and at switch-over.</summary>
public sealed record MigrationProgress(
    string Phase, int Round, long BytesSent, long RemainingPages, double DirtyBytesPerSecond,
    double LinkBytesPerSecond, double ExpectedDowntimeMs, int ThrottlePercent)
{
    /// <summary>Copy-storage: disk bytes sent so far, and changed disk bytes not sent yet.</summary>
    public long DiskBytesSent { get; init; }
    public long DiskRemainingBytes { get; init; }
}

/// <summary>What a finished migration measured. Downtime is from pausing the source to the destination's report
/// that its vCPUs run (so it includes one network round trip more than the guest saw).</summary>
public sealed record MigrationResult(TimeSpan Total, TimeSpan Downtime, int Rounds, long BytesSent, int StateBytes,
    long FinalPages, int ThrottlePercent)
{
    /// <summary>Copy-storage: disk bytes sent in all.</summary>
    public long DiskBytesSent { get; init; }
}
