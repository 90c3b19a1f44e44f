using Kiln.Devices.Legacy;
using Kiln.Interop;

namespace Kiln.Vmm.Console;

/// <summary>Reads the user's terminal (or a pipe) and feeds the guest's UART. Ctrl-A is the escape key, as in
/// QEMU: Ctrl-A X quits, Ctrl-A H prints help, Ctrl-A Ctrl-A sends a literal Ctrl-A.</summary>
public sealed class ConsoleInput
{
    public const byte EscapeKey = 0x01;
    private readonly int _fd;
    private readonly Action _quit;
    private readonly Action<string> _print;
    private readonly Thread _reader;
    private ISerialInput? _target;
    private bool _escapePending;

    // Signalled when a UART is attached or its receive FIFO frees up.
    private readonly AutoResetEvent _wake = new(false);

    public ConsoleInput(int fd, Action quit, Action<string> print)
    {
        _fd = fd;
        _quit = quit;
        _print = print;
        _reader = new Thread(ReadLoop) { Name = "console-in", IsBackground = true };
    }

    /// <summary>The UART that receives input; replaced when the machine reboots.</summary>
    public ISerialInput? Target
    {
        get => Volatile.Read(ref _target);
        set
        {
            var old = Volatile.Read(ref _target);
            if (old is not null)
                old.InputSpaceAvailable -= OnSpace;
            if (value is not null)
                value.InputSpaceAvailable += OnSpace;
            Volatile.Write(ref _target, value);
            _wake.Set();
        }
    }

    private void OnSpace() => _wake.Set();

    public void Start() => _reader.Start();

    private void ReadLoop()
    {
        var buffer = new byte[256];
        try
        {
            while (true)
            {
                int n = Libc.Read(_fd, buffer);
                if (n == 0)
                    return; // end of input: the guest keeps running
                for (int i = 0; i < n; i++)
                    HandleByte(buffer[i]);
            }
        }
        catch (SystemCallException e)
        {
            KilnLog.Debug($"console input stopped: {e.Message}");
        }
    }

    /// <summary>Escape handling, separate from the reader so it can be tested.</summary>
    internal void HandleByte(byte b)
    {
        if (_escapePending)
        {
            _escapePending = false;
            switch (b)
            {
                case (byte)'x' or (byte)'X':
                    _quit();
                    return;
                case (byte)'h' or (byte)'H' or (byte)'?':
                    _print("\r\nC-a h    print this help\r\nC-a x    exit kiln\r\nC-a C-a  send C-a\r\n");
                    return;
                case EscapeKey:
                    Send(EscapeKey);
                    return;
                default:
                    return;
            }
        }
        if (b == EscapeKey)
        {
            _escapePending = true;
            return;
        }
        Send(b);
    }

    /// <summary>Delivers one byte, waiting while no UART is attached (before boot, during a reboot) or while its
    /// receive FIFO is full, so typed-ahead or piped input is not lost.</summary>
    private void Send(byte b)
    {
        ReadOnlySpan<byte> one = [b];
        while (true)
        {
            var target = Target;
            if (target is not null && target.EnqueueInput(one) == 1)
                return;
            // The timeout covers a space event that fired between the refusal and this wait.
            _wake.WaitOne(target is null ? 100 : 10);
        }
    }
}
