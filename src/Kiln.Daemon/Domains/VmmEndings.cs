using Kiln.Contracts.Control;

namespace Kiln.Daemon.Domains;

/// <summary>Why a domain's VMM ended, as the state and reason the daemon shows: from its exit event on the watch
/// connection, from its exit status when no event came (a crash, or a clean exit that was not announced), or, for a
/// VMM that ended before its watch was set up, from its status and the last line of its log.</summary>
internal static class VmmEndings
{
    public static (DomainState State, string Reason) FromExit(ControlEvent? exit, string? how, int? status, bool stopping)
    {
        if (exit is null && status == 0)
            return (DomainState.ShutOff, "shutdown: the VMM exited cleanly without saying why"); // not a crash
        if (exit is null)
            return (DomainState.Crashed, how is null ? "the VMM process died without reporting an exit" : $"the VMM process died ({how})");
        return exit.Kind switch
        {
            "PowerOff" => (DomainState.ShutOff, "shutdown: " + exit.Message),
            "Reset" => (DomainState.ShutOff, "shutdown: guest reset (on_reboot=destroy)"),
            "DebugExit" => (DomainState.ShutOff, $"guest exited with status {exit.Code}"),
            "UserStop" => (DomainState.ShutOff, stopping ? "destroyed" : exit.Message ?? "stopped"),
            "Migrated" => (DomainState.ShutOff, exit.Message ?? "migrated"),
            _ => (DomainState.Crashed, $"{exit.Kind}: {exit.Message}"),
        };
    }

    /// <summary>The VMM's last log line says why it ended (`kiln: PowerOff: ACPI S5 ...`).</summary>
    public static (DomainState State, string Reason) FromEarlyExit(int? status, string lastLine)
    {
        string why = lastLine.StartsWith("kiln: ", StringComparison.Ordinal) ? lastLine["kiln: ".Length..] : "";
        return status switch
        {
            0 when why.StartsWith("PowerOff: ", StringComparison.Ordinal) => (DomainState.ShutOff, "shutdown: " + why["PowerOff: ".Length..]),
            0 when why.StartsWith("Reset: ", StringComparison.Ordinal) => (DomainState.ShutOff, "shutdown: guest reset (on_reboot=destroy)"),
            0 => (DomainState.ShutOff, "shutdown: the guest stopped right after its start"),
            > 128 => (DomainState.Crashed, $"the VMM process died (signal {status - 128})"),
            null => (DomainState.Crashed, "the VMM stopped answering right after its start"),
            _ when why.StartsWith("DebugExit: ", StringComparison.Ordinal) => (DomainState.ShutOff, $"guest exited with status {status}"),
            _ => (DomainState.Crashed, why.Length > 0 ? why : $"the VMM exited with status {status}"),
        };
    }

    public static string ReadFrom(string path, long offset)
    {
        using var f = File.OpenRead(path);
        f.Seek(offset, SeekOrigin.Begin);
        return new StreamReader(f).ReadToEnd();
    }

    public static string LastLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no output)" : lines[^1];
    }
}
