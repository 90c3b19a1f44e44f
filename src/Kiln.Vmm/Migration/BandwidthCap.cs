using System.Diagnostics;

namespace Kiln.Vmm.Migration;

/// <summary>Keeps a migration stream under a rate (QEMU's max-bandwidth, virsh migrate --bandwidth): between page
/// batches, a sender that is ahead of the rate sleeps until it is not. Only pre-copy is paced; the stop-and-copy
/// runs at full speed, since the guest is paused for it.</summary>
internal sealed class BandwidthCap(double bytesPerSecond)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _startBytes = -1;

    public double BytesPerSecond { get; } = bytesPerSecond;

    /// <summary>Sleeps while <paramref name="bytesWritten"/> (the stream's running total) is ahead of the rate.</summary>
    public void Pace(long bytesWritten, CancellationToken cancel)
    {
        if (_startBytes < 0)
        {
            _startBytes = bytesWritten;
            _clock.Restart();
            return;
        }
        double due = (bytesWritten - _startBytes) / BytesPerSecond;
        double ahead = due - _clock.Elapsed.TotalSeconds;
        if (ahead > 0)
            cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(ahead));
    }
}
