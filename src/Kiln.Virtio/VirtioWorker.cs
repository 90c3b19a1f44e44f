using Kiln.Interop;

namespace Kiln.Virtio;

/// <summary>The thread that does a device's work, woken through an eventfd: the KVM ioeventfd on the queue-notify
/// address (<see cref="EventFd"/>), or <see cref="Wake"/> from the transport's notify handler and host-side sources.
/// A device with a host-side source (a tap) can also have the worker wait for that descriptor itself
/// (<see cref="WatchHostFd"/>): the worker wakes straight on incoming data instead of through a second thread, which
/// costs two thread switches per wake-up. Spurious wake-ups are harmless: the device just finds nothing to do.
/// <para>The worker is a thread entry point that guest values reach (every ring and buffer it processes), so it
/// contains its faults: whatever the work throws goes to the fault handler (the device then needs a reset) and the
/// worker waits for the next wake-up. Only a failure to wait at all (a host error on its own descriptors) ends it,
/// reported the same way.</para></summary>
internal sealed class VirtioWorker : IDisposable
{
    private readonly Thread _thread;
    private readonly Action _work;
    private readonly Action<Exception> _onFault;
    private readonly FileDescriptor? _hostFd;
    private bool _watchHostFd; // touched only on the worker thread
    private volatile bool _stopping;

    public VirtioWorker(string name, Action work, FileDescriptor? hostFd, Action<Exception> onFault)
    {
        _work = work;
        _onFault = onFault;
        _hostFd = hostFd;
        _watchHostFd = hostFd is not null;
        EventFd = Interop.EventFd.Create(0); // blocking: the worker sleeps in read() when it watches nothing else
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public FileDescriptor EventFd { get; }

    public void Wake() => Interop.EventFd.Signal(EventFd);

    /// <summary>Called by the device on the worker thread once it has drained the host descriptor: wake the worker when
    /// it becomes readable again. Until then the worker ignores it, so a guest that posts no receive buffers leaves
    /// data queued in the kernel instead of making the worker spin.</summary>
    public void WatchHostFd()
    {
        if (_hostFd is not null)
            _watchHostFd = true;
    }

    private void Run()
    {
        Span<Poll.PollFd> fds = stackalloc Poll.PollFd[2];
        while (true)
        {
            try
            {
                if (!WaitForWork(fds))
                    continue;
            }
            catch (Exception e)
            {
                Report(e);
                return;
            }
            if (_stopping)
                return;
            try
            {
                _work();
            }
            catch (Exception e)
            {
                Report(e);
            }
        }
    }

    /// <summary>Sleeps until the eventfd or (when watched) the host descriptor is readable; false on EINTR.</summary>
    private bool WaitForWork(Span<Poll.PollFd> fds)
    {
        if (_hostFd is not null && _watchHostFd)
        {
            fds[0] = new Poll.PollFd { Fd = EventFd.Number, Events = Poll.POLLIN };
            fds[1] = new Poll.PollFd { Fd = _hostFd.Number, Events = Poll.POLLIN };
            if (Poll.Wait(fds, -1) == 0)
                return false;
            if (fds[0].Revents != 0)
                Interop.EventFd.Consume(EventFd);
            if (fds[1].Revents != 0)
                _watchHostFd = false;
        }
        else
            Interop.EventFd.Consume(EventFd);
        return true;
    }

    private void Report(Exception e)
    {
        try
        {
            _onFault(e);
        }
        catch (Exception)
        {
            // The handler is the device's Fail path, which does not throw; nothing further to do on this thread.
        }
    }

    public void Dispose()
    {
        if (_stopping)
            return;
        _stopping = true;
        Wake();
        _thread.Join();
        EventFd.Dispose();
    }
}
