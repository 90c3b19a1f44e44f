using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>The sending side of a live migration: pre-copy over KVM's dirty log, then a short stop-and-copy.
/// Until the source commits (sends Go), any failure (a cut link, a crashed destination, <c>migrate-abort</c>, a
/// guest that will not converge) turns dirty logging off and leaves the source running as before; a failure after
/// Go and before the destination's Resumed leaves it paused (<see cref="MigrationOutcomeUnknownException"/>).</summary>
public sealed class MigrationSource(Machine machine, MigrationOptions options, Action<MigrationProgress>? progress = null)
{
    public const uint ProtocolVersion = 3;

    /// <summary>A link rate assumed until a round moved enough bytes to measure one (1 Gbit/s).</summary>
    private const double DefaultLinkRate = 125e6;
    private const long MinMeasuredBytes = 4 << 20;

    /// <summary>Below this expected downtime another pre-copy round is not worth its time.</summary>
    private const double DowntimeFloorMs = 5;

    /// <summary>Rounds beyond the first fitting one are only tried up to this round.</summary>
    private const int ExtraRoundsUpTo = 10;

    /// <summary>Set just before Go is written: from then on a failure leaves the source paused.</summary>
    private bool _committed;
    /// <summary>Copy-storage only: the disks streamed alongside RAM.</summary>
    private DiskStreaming? _disks;

    public MigrationResult Run(CancellationToken cancel)
    {
        using var lease = machine.Lease() ?? throw new MigrationException("the machine is not running");
        var total = Stopwatch.StartNew();
        StateCodeWarmUp.Run(machine.Spec, machine.Vm.Kvm, machine.Vm.Kvm.GetSupportedCpuid());
        KilnLog.Debug($"migration: warm-up {total.Elapsed.TotalMilliseconds:0} ms");
        MigrationStream stream;
        try
        {
            stream = MigrationConnection.Connect(options.Destination, options.Token, options.Tls, options.IoTimeout, cancel);
        }
        catch (OperationCanceledException)
        {
            throw new MigrationException("migration aborted");
        }
        using var _ = stream;
        // An abort is noticed between page batches, which lets the destination hear why; a read or write blocked
        // on a dead link is ended by closing the socket when that has not happened within two seconds.
        using var onAbort = cancel.Register(() => Task.Delay(2000).ContinueWith(_ => stream.Inner.Dispose()));
        DirtyPageTracker? tracker = null;
        var throttle = new VcpuThrottle(machine);
        bool paused = false;
        try
        {
            return Migrate(stream, total, cancel, ref tracker, throttle, ref paused);
        }
        catch (Exception e)
        {
            // Every failure, expected (the link, the destination) or not (state a guest shaped that a device could
            // not save), ends the migration the same way: the source runs on, or stays paused after Go.
            string reason = cancel.IsCancellationRequested ? "migration aborted"
                : e is MigrationException ? e.Message
                : e is IOException or SocketException or ObjectDisposedException ? $"migration stream failed: {e.Message}"
                : $"migration failed: {e.GetType().Name}: {e.Message}";
            if (_committed)
            {
                // After Go the guest may already run on the destination: never resume here (see the exception).
                throttle.Dispose();
                tracker?.Dispose();
                _disks?.Stop();
                throw new MigrationOutcomeUnknownException(reason, e);
            }
            stream.TrySendAbort(reason);
            throttle.Dispose();
            tracker?.Dispose();
            _disks?.Stop();
            if (paused)
                machine.Resume();
            throw new MigrationException(reason, e);
        }
    }

    private MigrationResult Migrate(MigrationStream stream, Stopwatch total, CancellationToken cancel,
        ref DirtyPageTracker? tracker, VcpuThrottle throttle, ref bool paused)
    {
        var cap = options.MaxBandwidthBytesPerSecond is double rate ? new BandwidthCap(rate) : null;
        bool stopped = false; // the stop-and-copy is not paced: the guest waits for it
        void KeepGoing()
        {
            cancel.ThrowIfCancellationRequested();
            if (machine.IsStopping)
                throw new MigrationException("the guest stopped during the migration");
            if (!stopped)
                cap?.Pace(stream.BytesWritten, cancel);
        }

        var hello = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, ProtocolVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(4), machine.Spec.Machine.MemoryBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(hello.AsSpan(12), (uint)machine.Spec.Machine.Cpus);
        _disks = options.CopyStorage ? DiskStreaming.For(machine) : null;
        if (_disks is not null)
            hello = [.. hello, .. _disks.HelloExtension()];
        stream.WriteFrame(MigrationFrame.Hello, hello);
        stream.WriteFrame(MigrationFrame.Spec, SpecHandshake.Payload(machine.Spec));

        tracker = new DirtyPageTracker(machine.Memory, machine.Vm);
        var pages = new PageBatchWriter(machine.Memory, stream);
        double linkRate = DefaultLinkRate;
        double budgetMs = options.MaxDowntime.TotalMilliseconds;

        // Round 1: all of RAM (zero pages left out), while the guest runs and KVM logs what it changes meanwhile.
        tracker.MarkAll();
        var round = Stopwatch.StartNew();
        long before = stream.BytesWritten;
        _disks?.Start();
        _disks?.SendAll(stream, KeepGoing);
        pages.SendPending(tracker, skipZero: true, KeepGoing);
        EndRound(stream);
        int rounds = 1;
        long previousPending = long.MaxValue;
        int stalledAtMax = 0;
        while (true)
        {
            KeepGoing();
            long sent = stream.BytesWritten - before;
            double seconds = Math.Max(round.Elapsed.TotalSeconds, 1e-6);
            if (sent >= MinMeasuredBytes)
                linkRate = sent / seconds;
            if (cap is not null)
                linkRate = Math.Min(linkRate, cap.BytesPerSecond);
            KilnLog.Debug($"migration: round {rounds}: {sent / 1e6:0.0} MB in {seconds * 1000:0} ms (at {total.Elapsed.TotalMilliseconds:0} ms)");
            long found = tracker.Collect();
            double diskPending = _disks?.PendingBytes ?? 0; // changed since the last pass: dirty rate and backlog
            double dirtyRate = (found * (double)DirtyPageTracker.PageSize + diskPending) / seconds;
            double expectedMs = (tracker.PendingPages * (double)DirtyPageTracker.PageSize + diskPending) / linkRate * 1000;
            Report("precopy", rounds, stream.BytesWritten, tracker.PendingPages, dirtyRate, linkRate, expectedMs, throttle.Percent);
            // Fitting the budget is enough to stop, but not always the best moment: when the next round would
            // leave less than half as much behind (the guest dirties slower than the link carries), another round
            // shortens the downtime, down to a floor where it no longer pays. The first round's rate says little
            // about the next: it is slowed by the destination touching its RAM for the first time. So a second
            // round always runs (as QEMU's iterative stage does), and the decision is made on its rate.
            double pendingBytes = tracker.PendingPages * (double)DirtyPageTracker.PageSize + diskPending;
            bool worthAnotherRound = (rounds == 1 || dirtyRate * (pendingBytes / linkRate) < pendingBytes / 2)
                                     && expectedMs > DowntimeFloorMs && rounds < ExtraRoundsUpTo && rounds < options.MaxRounds - 1;
            if (expectedMs <= budgetMs && !worthAnotherRound)
                break;
            // Auto-converge: from round 3, a round that did not at least halve the dirty set slows the vCPUs down a
            // step (a guest that converges on its own halves it or better each round).
            if (rounds >= 3 && expectedMs > budgetMs && tracker.PendingPages > previousPending / 2)
            {
                if (throttle.Percent >= 90)
                    stalledAtMax++;
                throttle.Percent = throttle.Percent == 0 ? 20 : Math.Min(90, throttle.Percent + 10);
            }
            if (expectedMs > budgetMs && (rounds >= options.MaxRounds || stalledAtMax >= 3))
            {
                string throttleNote = throttle.Percent > 0 ? $", even with its vCPUs throttled to {throttle.Percent}%" : "";
                throw new MigrationException(
                    $"the guest's memory did not converge: after {rounds} rounds {tracker.PendingPages * DirtyPageTracker.PageSize / 1e6:0.0} MB " +
                    $"were still dirty, {expectedMs:0} ms at the link's {linkRate / 1e6:0} MB/s against a budget of {budgetMs:0} ms " +
                    $"(the guest dirties {dirtyRate / 1e6:0} MB/s{throttleNote}); gave up (raise --max-downtime)");
            }
            previousPending = tracker.PendingPages;
            round.Restart();
            before = stream.BytesWritten;
            pages.SendPending(tracker, skipZero: false, KeepGoing);
            _disks?.SendDirty(stream, KeepGoing);
            EndRound(stream);
            rounds++;
        }

        // Stop-and-copy: pause, the last dirty pages, the device and CPU state; then wait for the destination.
        int throttled = throttle.Percent;
        throttle.Dispose();
        var downtime = Stopwatch.StartNew();
        machine.Pause();
        paused = true;
        stopped = true;
        var phases = new SwitchOverTimes();
        phases.Mark("pause", downtime);
        KeepGoing();
        tracker.Collect();
        long finalPages = tracker.PendingPages;
        pages.SendPending(tracker, skipZero: false, KeepGoing);
        phases.Mark("pages", downtime);
        if (_disks is not null)
        {
            _disks.SendDirty(stream, KeepGoing); // the vCPUs and device workers are paused: nothing changes now
            phases.Mark("disks", downtime);
        }
        byte[] state = machine.SaveState();
        phases.Mark("save", downtime);
        stream.WriteFrame(MigrationFrame.State, state);
        stream.Flush();
        Report("stop-and-copy", rounds, stream.BytesWritten, 0, 0, linkRate,
            downtime.Elapsed.TotalMilliseconds, throttled);
        stream.Expect(MigrationFrame.Ready);
        phases.Mark("restore", downtime);
        // The commit point: once Go may have left, the destination owns the guest. Should it then fail to confirm,
        // the source stays paused with the outcome unknown (the catch in Run), never resumed on its own.
        _committed = true;
        stream.WriteFrame(MigrationFrame.Go, []);
        stream.Flush();
        stream.Expect(MigrationFrame.Resumed);
        downtime.Stop();
        phases.Mark("resume", downtime);
        KilnLog.Debug($"switch-over: {phases}");
        Report("done", rounds, stream.BytesWritten, 0, 0, linkRate, downtime.Elapsed.TotalMilliseconds, throttled);
        _disks?.Stop();
        return new MigrationResult(total.Elapsed, downtime.Elapsed, rounds, stream.BytesWritten, state.Length,
            finalPages, throttled) { DiskBytesSent = _disks?.BytesSent ?? 0 };
    }

    /// <summary>Waits until the destination has applied the round. Without this the link rate would count bytes
    /// still queued in socket buffers, and the destination's backlog (first-touch page faults) would land in the
    /// downtime after the pause.</summary>
    private static void EndRound(MigrationStream stream)
    {
        stream.WriteFrame(MigrationFrame.Sync, []);
        stream.Flush();
        stream.Expect(MigrationFrame.Synced);
    }

    private void Report(string phase, int round, long bytes, long remaining, double dirtyRate, double linkRate,
        double expectedMs, int throttle) =>
        progress?.Invoke(new MigrationProgress(phase, round, bytes, remaining, dirtyRate, linkRate, expectedMs, throttle)
        {
            DiskBytesSent = _disks?.BytesSent ?? 0, DiskRemainingBytes = _disks?.PendingBytes ?? 0,
        });
}
