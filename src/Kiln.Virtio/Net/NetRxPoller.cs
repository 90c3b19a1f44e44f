using Kiln.Interop;

namespace Kiln.Virtio.Net;

/// <summary>Waits in poll(2) for the backend's descriptor to become readable and then wakes the device (once): it
/// stops watching until the device, having drained the backend, calls <see cref="Rearm"/>. So a guest that posts no
/// receive buffers leaves frames queued in the kernel instead of making this thread spin.</summary>
internal sealed class NetRxPoller : IDisposable
{
    private readonly FileDescriptor _backend;
    private readonly FileDescriptor _control = EventFd.Create(EventFd.EFD_NONBLOCK);
    private readonly Action _readable;
    private readonly Thread _thread;
    private volatile bool _stopping;

    public NetRxPoller(string name, FileDescriptor backend, Action readable)
    {
        _backend = backend;
        _readable = readable;
        _thread = new Thread(Run) { IsBackground = true, Name = name + "-rx" };
        _thread.Start();
    }

    /// <summary>The backend is drained: watch it again. Called on the device's worker.</summary>
    public void Rearm() => EventFd.Signal(_control);

    private void Run()
    {
        Span<Poll.PollFd> fds = stackalloc Poll.PollFd[2];
        bool armed = true;
        while (true)
        {
            fds[0] = new Poll.PollFd { Fd = _control.Number, Events = Poll.POLLIN };
            fds[1] = new Poll.PollFd { Fd = _backend.Number, Events = Poll.POLLIN };
            Poll.Wait(fds[..(armed ? 2 : 1)], -1);
            if (_stopping)
                return;
            if (fds[0].Revents != 0)
            {
                EventFd.Consume(_control);
                armed = true;
            }
            else if (armed && fds[1].Revents != 0)
            {
                armed = false;
                _readable();
            }
        }
    }

    public void Dispose()
    {
        if (_stopping)
            return;
        _stopping = true;
        EventFd.Signal(_control);
        _thread.Join();
        _control.Dispose();
    }
}
