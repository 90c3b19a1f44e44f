using Kiln.Interop;

namespace Kiln.Virtio;

/// <summary>The thread that does a device's work, woken through an eventfd: the KVM ioeventfd on the queue-notify
/// address (<see cref="EventFd"/>), or <see cref="Wake"/> from the transport's notify handler and host-side sources.
/// Spurious wake-ups are harmless: the device just finds nothing to do.</summary>
internal sealed class VirtioWorker : IDisposable
{
    private readonly Thread _thread;
    private readonly Action _work;
    private volatile bool _stopping;

    public VirtioWorker(string name, Action work)
    {
        _work = work;
        EventFd = Interop.EventFd.Create(0); // blocking: the worker sleeps in read()
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public FileDescriptor EventFd { get; }

    public void Wake() => Interop.EventFd.Signal(EventFd);

    private void Run()
    {
        while (true)
        {
            Interop.EventFd.Consume(EventFd);
            if (_stopping)
                return;
            _work();
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
