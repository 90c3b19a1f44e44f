using System.Diagnostics;
using System.Runtime.CompilerServices;
using Kiln.Memory;

namespace Kiln.Virtio.Queue;

/// <summary>Serves a queue by polling its avail ring for a short window after each request, with the driver asked not
/// to notify meanwhile: a driver that submits its next request right after the last completes (one request in
/// flight) then costs no VM exit and no worker wake-up per request — the idea of QEMU's adaptive AioContext polling.
/// When the window passes, notifications are asked for again and the ring is checked once more, so no entry is ever
/// left without a wake-up. Polling only pays while the worker keeps its CPU: when a gap in the loop shows it was
/// descheduled (an oversubscribed host), a request may have waited for the scheduler instead of waking the worker,
/// so polling stops for <see cref="Backoff"/>. One instance per queue; used only on the device's worker.</summary>
public sealed class RingPoller
{
    /// <summary>How long the worker keeps looking at an idle ring before it sleeps until the next notification.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMicroseconds(64);

    /// <summary>A loop iteration longer than this means the worker lost its CPU.</summary>
    public static readonly TimeSpan Preempted = TimeSpan.FromMicroseconds(30);

    /// <summary>How long polling stays off after the worker was found descheduled.</summary>
    public static readonly TimeSpan Backoff = TimeSpan.FromMilliseconds(50);

    private static readonly long s_window = Ticks(Window), s_preempted = Ticks(Preempted), s_backoff = Ticks(Backoff);
    private long _pollAgainAt;
    private readonly bool _poll;

    /// <param name="poll">Whether to watch the ring for <see cref="Window"/> after serving; without it the poller only
    /// drains the ring with notifications suppressed, then asks for them again.</param>
    public RingPoller(bool poll = true) => _poll = poll;

    private static long Ticks(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Pops and handles chains until the ring is empty (and, when polling, has stayed empty for
    /// <see cref="Window"/>). <paramref name="handle"/> completes one chain (AddUsed and, if it wants, the interrupt).
    /// While chains keep coming the driver stays asked not to notify (as QEMU's virtio_queue_set_notification
    /// pattern): notifications are asked for only once the ring is empty, then it is checked once more.
    /// Protocol errors propagate to the caller.</summary>
    public void Serve(Virtqueue queue, GuestMemory memory, Action<DescriptorChain> handle)
    {
        bool served = false;
        while (true)
        {
            queue.SuppressNotifications(memory);
            try
            {
                while (Drain(queue, memory, handle, ref served))
                {
                }
                // Watch the ring for the driver's next request only after serving one: a wake-up that found this
                // ring empty (the device's other queue was kicked, or its host side became readable) must not spin.
                if (served && _poll && Stopwatch.GetTimestamp() >= _pollAgainAt)
                    while (Poll(queue, memory, handle))
                    {
                    }
            }
            finally
            {
                queue.EnableNotifications(memory);
            }
            // Published before the driver could see that notifications are wanted again: no kick will come for it.
            if (queue.Pop(memory) is not { } late)
                return;
            handle(late);
            served = true;
        }
    }

    /// <summary>Chains handled per call of <see cref="Poll"/> or <see cref="Drain"/> before it returns (and is called
    /// again at once). A loop keeps running the code its method was entered with, so a stream served in one call
    /// would run the precompiled (ReadyToRun) code to the end; re-entering lets the runtime switch to the optimized
    /// code it compiles for hot methods.</summary>
    private const int Burst = 256;

    /// <summary>Handles up to <see cref="Burst"/> chains; true when it stopped at that limit (more may be waiting).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private static bool Drain(Virtqueue queue, GuestMemory memory, Action<DescriptorChain> handle, ref bool served)
    {
        for (int n = 0; n < Burst; n++)
        {
            if (queue.Pop(memory) is not { } chain)
                return false;
            handle(chain);
            served = true;
        }
        return true;
    }

    /// <summary>Like <see cref="Drain"/>, but an empty ring is watched for <see cref="Window"/> before giving up.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot per frame: optimized from the first call (see RingPoller.Burst)
    private bool Poll(Virtqueue queue, GuestMemory memory, Action<DescriptorChain> handle)
    {
        long idleSince = 0, last = 0; // 0: busy (the clock is read only while the ring is empty)
        for (int n = 0; n < Burst;)
        {
            if (queue.Pop(memory) is { } chain)
            {
                handle(chain);
                idleSince = 0;
                n++;
                continue;
            }
            long now = Stopwatch.GetTimestamp();
            if (idleSince == 0)
                idleSince = last = now;
            if (now - last > s_preempted)
            {
                _pollAgainAt = now + s_backoff;
                return false;
            }
            if (now - idleSince > s_window)
                return false;
            last = now;
            Thread.SpinWait(8);
        }
        return true;
    }
}
