using Kiln.Boot;
using Kiln.Devices.State;
using Kiln.GuestKit;
using Kiln.Interop;
using Kiln.Kvm;
using Kiln.Memory;
using Kiln.Vmm;

namespace Kiln.Cli;

/// <summary>The `kiln` command: a verb, then its options. Errors are one line on stderr (the stack trace only with
/// --debug); usage errors exit 2, failures 1.</summary>
public static class Program
{
    private const string Usage = """
        usage: kiln [--debug] <command> [options]

        commands:
          run        boot a VM with the terminal as its serial console
          guest-kit  build a Linux kernel and busybox initramfs for guests ('guest-kit build')
          img        create, inspect, convert, check and resize disk images (raw, qcow2)
          migrate    move a running domain to another daemon ('migrate --live NAME tcp://HOST:PORT')
          daemon     manage domains: persistent definitions, supervised VMMs, an HTTP/JSON API
          list, define, start, shutdown, destroy, console, ...   virsh-style verbs (see 'kiln help domains')
          save, restore, snapshot, snapshot-list, ...            snapshots (see 'kiln help snapshots')
          version    print Kiln's version

        'kiln <command> --help' describes a command.
        """;

    public static int Main(string[] argv)
    {
        var args = argv.ToList();
        bool debug = args.Remove("--debug");
        KilnLog.DebugEnabled = debug;
        if (args is ["help", "snapshots"])
        {
            System.Console.Out.WriteLine(SnapshotCommands.Help);
            return 0;
        }
        if (args is ["help", "domains"])
        {
            System.Console.Out.WriteLine(DomainCommands.Help);
            return 0;
        }
        if (args.Count == 0 || args[0] is "-h" or "--help" or "help")
        {
            System.Console.Out.WriteLine(Usage);
            return args.Count == 0 ? 2 : 0;
        }
        string verb = args[0];
        var rest = args.Skip(1).ToList();
        try
        {
            if (rest.Contains("--help") || rest.Contains("-h"))
            {
                System.Console.Out.WriteLine(HelpFor(verb));
                return 0;
            }
            return verb switch
            {
                "run" => RunCommand.Execute(rest),
                "guest-kit" => GuestKitCommand.Execute(rest),
                "img" => ImgCommand.Execute(rest),
                "daemon" => DaemonCommand.Execute(rest),
                "vmm-standby" => VmmStandbyCommand.Execute(rest),
                "migrate" => MigrateCommand.Execute(rest),
                _ when DomainCommands.Verbs.Contains(verb) => DomainCommands.Execute(verb, rest),
                _ when SnapshotCommands.Verbs.Contains(verb) => SnapshotCommands.Execute(verb, rest),
                "version" or "--version" => PrintVersion(),
                _ => throw new UsageException($"unknown command '{verb}' (see 'kiln --help')"),
            };
        }
        catch (UsageException e)
        {
            KilnLog.Error(e.Message);
            return 2;
        }
        catch (Exception e) when (e is KvmException or BootException or GuestMemoryException or SystemCallException
                                       or StateFormatException or IOException or UnauthorizedAccessException
                                       or Virtio.Net.NetBackendException or Vmm.Migration.MigrationException
                                       or GuestKitException or Vmm.Snapshot.SnapshotException)
        {
            KilnLog.Error(e.Message);
            if (debug)
                KilnLog.Info(e.ToString());
            return 1;
        }
    }

    private static string HelpFor(string verb) => verb switch
    {
        "run" => RunCommand.Help,
        "guest-kit" => GuestKitCommand.Help,
        "img" => ImgCommand.Help,
        "daemon" => DaemonCommand.Help,
        "migrate" => MigrateCommand.Help,
        "domains" => DomainCommands.Help,
        _ when DomainCommands.Verbs.Contains(verb) => DomainCommands.Help,
        "snapshots" => SnapshotCommands.Help,
        _ when SnapshotCommands.Verbs.Contains(verb) => SnapshotCommands.Help,
        _ => Usage,
    };

    private static int PrintVersion()
    {
        var version = typeof(Program).Assembly.GetName().Version;
        System.Console.Out.WriteLine($"kiln {version?.ToString(3) ?? "0.0.0"}");
        return 0;
    }
}
