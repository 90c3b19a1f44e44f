using Kiln.Vmm;

namespace Kiln.Cli;

/// <summary>The `kiln` command: global options, a verb from <see cref="VerbTable"/>, then the verb's options (global
/// options may also follow the verb). Every error is a <see cref="KilnException"/>: one line on stderr (the stack
/// trace only with --debug); usage errors exit 2, failures 1.</summary>
public static class Program
{
    private const string Usage = """
        usage: kiln [--debug] [-c URI] <command> [options]

        commands:
          run        boot a VM with the terminal as its serial console
          guest-kit  build a Linux kernel and busybox initramfs for guests ('guest-kit build')
          img        create, inspect, convert, check and resize disk images (raw, qcow2)
          migrate    move a running domain to another daemon ('migrate --live NAME tcp://HOST:PORT')
          daemon     manage domains: persistent definitions, supervised VMMs, an HTTP/JSON API
          list, define, start, shutdown, destroy, console, ...   virsh-style verbs (see 'kiln help domains')
          save, restore, snapshot, snapshot-list, ...            snapshots (see 'kiln help snapshots')
          version    print Kiln's version

        'kiln <command> --help' describes a command; -c URI (before or after the command) picks the daemon.
        """;

    public static int Main(string[] argv)
    {
        var globals = new GlobalOptions();
        try
        {
            return Dispatch(argv, globals);
        }
        catch (KilnException e)
        {
            Report(e, globals.Debug);
            return e.ExitCode;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file the user named (a kernel, a disk, a definition) that cannot be read: the BCL's own one line.
            Report(e, globals.Debug);
            return 1;
        }
    }

    private static int Dispatch(string[] argv, GlobalOptions globals)
    {
        var args = argv.ToList();
        int verbAt = LeadingGlobals(args, globals);
        KilnLog.DebugEnabled = globals.Debug;
        if (verbAt >= args.Count)
        {
            if (globals.Help)
            {
                System.Console.Out.WriteLine(Usage);
                return 0;
            }
            System.Console.Out.WriteLine(Usage);
            return 2;
        }
        string name = args[verbAt];
        var rest = args.Skip(verbAt + 1).ToList();
        if (name is "help" or "--version")
            return name == "help" ? Help(rest) : VerbTable.Find("version")!.Run([], globals);
        var verb = VerbTable.Find(name) ?? throw new UsageException($"unknown command '{name}' (see 'kiln --help')");
        globals.TakeFrom(rest, verb.Connects);
        KilnLog.DebugEnabled = globals.Debug;
        if (globals.Help)
        {
            System.Console.Out.WriteLine(verb.Help?.Invoke() ?? Usage);
            return 0;
        }
        return verb.Run(rest, globals);
    }

    /// <summary>The global options before the verb; returns the verb's index.</summary>
    private static int LeadingGlobals(List<string> args, GlobalOptions globals)
    {
        int i = 0;
        while (i < args.Count && args[i].StartsWith('-') && args[i] != "--version")
        {
            string a = args[i];
            if (a == "--debug")
                globals.Debug = true;
            else if (a is "-h" or "--help")
                globals.Help = true;
            else if (a is "-c" or "--connect")
                globals.Connect = ++i < args.Count ? args[i] : throw new UsageException($"{a} needs a value (URI)");
            else if (a.StartsWith("--connect=", StringComparison.Ordinal))
                globals.Connect = a["--connect=".Length..];
            else
                throw new UsageException($"unknown option '{a}' before the command (see 'kiln --help')");
            i++;
        }
        return i;
    }

    private static int Help(List<string> topic)
    {
        string text = topic switch
        {
            [] => Usage,
            ["domains"] => DomainCommands.Help,
            ["snapshots"] => SnapshotCommands.Help,
            [var verb] => VerbTable.Find(verb) is { } v ? v.Help?.Invoke() ?? VerbTable.GroupHelp(v.Group, Usage) : throw new UsageException($"help: unknown command '{verb}'"),
            _ => throw new UsageException("help: give one command or topic"),
        };
        System.Console.Out.WriteLine(text);
        return 0;
    }

    private static void Report(Exception e, bool debug)
    {
        // virsh's form for what the daemon answered; kiln's own for the rest.
        if (e is DaemonClientException)
            System.Console.Error.WriteLine($"error: {e.Message}");
        else
            KilnLog.Error(e.Message);
        if (debug)
            KilnLog.Info(e.ToString());
    }
}
