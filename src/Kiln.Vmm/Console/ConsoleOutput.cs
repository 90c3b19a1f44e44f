using Kiln.Devices.Legacy;
using Kiln.Interop;

namespace Kiln.Vmm.Console;

/// <summary>Guest serial output to a file descriptor, written by its own thread so a vCPU's exit path only appends
/// to a buffer. While the writer is busy or pausing, bytes accumulate and go out in one write; an idle writer is
/// woken at once, so an interactive echo is not delayed.</summary>
public sealed class ConsoleOutput : ISerialOutput, IDisposable
{
    private const int MaxBuffered = 4 << 20;
    private readonly int _fd;
    private readonly object _lock = new();
    private readonly Thread _writer;
    private byte[] _pending = new byte[4096];
    private byte[] _spare = new byte[4096];
    private int _count;
    private bool _writerWaiting;
    private bool _writing; // a taken batch is still on its way to the descriptor
    private bool _closed;
    private bool _broken;

    public ConsoleOutput(int fd)
    {
        _fd = fd;
        _writer = new Thread(WriterLoop) { Name = "console-out", IsBackground = true };
        _writer.Start();
    }

    public long BytesWritten { get; private set; }

    public void Write(byte b)
    {
        lock (_lock)
        {
            // Back-pressure: a reader that stops reading eventually slows the guest instead of exhausting memory.
            while (_count >= MaxBuffered && !_broken && !_closed)
                Monitor.Wait(_lock);
            if (_count == _pending.Length)
                Array.Resize(ref _pending, _pending.Length * 2);
            _pending[_count++] = b;
            if (_writerWaiting)
                Monitor.Pulse(_lock);
        }
    }

    /// <summary>Text from Kiln itself (escape-key help), interleaved in order with guest output.</summary>
    public void WriteText(string text)
    {
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(text))
            Write(b);
    }

    /// <summary>Waits until everything written so far has reached the descriptor (not just left the buffer: the
    /// writer may still be writing the batch it took, and a VMM that exits right after a save must not lose it).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            while ((_count > 0 || _writing) && !_broken)
            {
                Monitor.PulseAll(_lock);
                Monitor.Wait(_lock, 50);
            }
        }
    }

    private void WriterLoop()
    {
        while (true)
        {
            byte[] batch;
            int length;
            lock (_lock)
            {
                while (_count == 0 && !_closed)
                {
                    _writerWaiting = true;
                    Monitor.Wait(_lock);
                    _writerWaiting = false;
                }
                if (_count == 0 && _closed)
                    return;
                batch = _pending;
                length = _count;
                _pending = _spare;
                _spare = batch;
                _count = 0;
                _writing = true;
                Monitor.PulseAll(_lock); // writers held by back-pressure
            }
            WriteOut(batch.AsSpan(0, length));
            lock (_lock)
            {
                _writing = false;
                Monitor.PulseAll(_lock); // flushers
            }
            // A short pause lets a fast stream accumulate, so a guest printing byte by byte costs one write per
            // millisecond rather than one per byte.
            Thread.Sleep(1);
        }
    }

    private void WriteOut(ReadOnlySpan<byte> data)
    {
        if (_broken)
            return;
        try
        {
            Libc.WriteAll(_fd, data);
            BytesWritten += data.Length;
        }
        catch (SystemCallException e)
        {
            // The reader went away (EPIPE); keep the guest running and stop writing.
            _broken = true;
            KilnLog.Debug($"console output stopped: {e.Message}");
        }
    }

    public void Dispose()
    {
        Flush();
        lock (_lock)
        {
            _closed = true;
            Monitor.PulseAll(_lock);
        }
        _writer.Join(1000);
    }
}
