using Kiln.Vmm.Logging;
using Microsoft.Extensions.Logging;

namespace Kiln.Vmm;

/// <summary>The process's Microsoft.Extensions.Logging logger for the `kiln` command and its VMM (category "kiln"),
/// with the one-line console provider (<see cref="KilnConsoleLoggerProvider"/>); --debug lowers the level to Debug.
/// The factory is made on the first message, not at start: a VMM's start-up time is a product feature, and most
/// runs log nothing before the guest's first instruction. The short static methods keep call sites one line.</summary>
public static class KilnLog
{
    private static readonly Lock FactoryLock = new();
    private static ILoggerFactory? s_factory;
    private static ILogger? s_logger;
    private static bool s_debug;

    /// <summary>Debug messages on (--debug). Set before the first message.</summary>
    public static bool DebugEnabled
    {
        get => s_debug;
        set
        {
            s_debug = value;
            lock (FactoryLock)
            {
                s_factory?.Dispose();
                s_factory = null;
                s_logger = null;
            }
        }
    }

    /// <summary>The factory (for loggers of other categories, e.g. the virtio devices').</summary>
    public static ILoggerFactory Factory
    {
        get
        {
            lock (FactoryLock)
                return s_factory ??= new LoggerFactory([new KilnConsoleLoggerProvider()],
                    new LoggerFilterOptions { MinLevel = s_debug ? LogLevel.Debug : LogLevel.Information });
        }
    }

    public static ILogger Logger
    {
        get
        {
            var logger = Volatile.Read(ref s_logger);
            if (logger is not null)
                return logger;
            logger = Factory.CreateLogger("kiln");
            Volatile.Write(ref s_logger, logger);
            return logger;
        }
    }

    public static void Debug(string message)
    {
        if (s_debug)
            Logger.LogDebug("{Message}", message);
    }

    public static void Info(string message) => Logger.LogInformation("{Message}", message);

    public static void Warn(string message) => Logger.LogWarning("{Message}", message);

    public static void Error(string message) => Logger.LogError("{Message}", message);
}
