using System.Text;
using Microsoft.Extensions.Logging;

namespace Kiln.Vmm.Logging;

/// <summary>A Microsoft.Extensions.Logging provider for the `kiln` command and its VMM: one line per event on stderr,
/// "kiln: [warning: |error: |debug: ]message", written synchronously (a VMM's last words before it exits must not
/// wait in a queue) with "\r\n" (the terminal may be in raw mode, where a bare "\n" does not return the carriage).</summary>
public sealed class KilnConsoleLoggerProvider : ILoggerProvider
{
    private static readonly Lock WriteLock = new();

    public ILogger CreateLogger(string categoryName) => Logger.Instance;

    public void Dispose()
    {
    }

    private sealed class Logger : ILogger
    {
        public static readonly Logger Instance = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            string prefix = logLevel switch
            {
                LogLevel.Trace or LogLevel.Debug => "debug: ",
                LogLevel.Warning => "warning: ",
                LogLevel.Error or LogLevel.Critical => "error: ",
                _ => "",
            };
            var bytes = Encoding.UTF8.GetBytes("kiln: " + prefix + formatter(state, exception) + "\r\n");
            lock (WriteLock)
            {
                try
                {
                    Interop.Libc.WriteAll(2, bytes);
                }
                catch (Interop.SystemCallException)
                {
                    // stderr is gone (a closed pipe): there is nowhere left to say anything.
                }
            }
        }
    }
}
