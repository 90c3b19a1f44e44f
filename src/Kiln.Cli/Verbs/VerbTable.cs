namespace Kiln.Cli;

/// <summary>Every `kiln` verb, in the order the help lists them (as kvmtool's kvm_commands[]): the one place that
/// says which verbs exist and what runs them.</summary>
public static class VerbTable
{
    public const string Vm = "vm", Domain = "domains", Snapshot = "snapshots", Tool = "tools";

    public static readonly IReadOnlyList<Verb> All =
    [
        new("run", Vm, "boot a VM with the terminal as its serial console", (a, _) => RunCommand.Execute(a), Help: () => RunCommand.Help),
        new("vmm-standby", Vm, "a VMM started ahead for the daemon", (a, _) => VmmStandbyCommand.Execute(a), Hidden: true),
        new("guest-kit", Tool, "build a Linux kernel and busybox initramfs for guests ('guest-kit build')", (a, _) => GuestKitCommand.Execute(a), Help: () => GuestKitCommand.Help),
        new("img", Tool, "create, inspect, convert, check and resize disk images (raw, qcow2)", (a, _) => ImgCommand.Execute([.. a]), Help: () => ImgCommand.Help),
        new("daemon", Tool, "manage domains: persistent definitions, supervised VMMs, an HTTP/JSON API", (a, g) => DaemonCommand.Execute(a, g.Debug), Help: () => DaemonCommand.Help),
        new("migrate", Domain, "move a running domain to another daemon ('migrate --live NAME tcp://HOST:PORT')", MigrateCommand.Execute, Connects: true, Help: () => MigrateCommand.Help),
        .. DomainCommands.Verbs,
        .. SnapshotCommands.Verbs,
        new("version", Tool, "print Kiln's version", (_, _) => PrintVersion()),
    ];

    public static Verb? Find(string name) => All.FirstOrDefault(v => v.Name == name);

    /// <summary>The help of one group of verbs, from the table (formatted only when asked: start-up pays nothing).</summary>
    public static string GroupHelp(string group, string heading) =>
        heading + "\n" + string.Join('\n', All.Where(v => v.Group == group && !v.Hidden)
            .Select(v => $"  {v.Name,-18} {(v.Synopsis.Length > 0 ? $"{v.Synopsis,-34} " : "")}{v.Summary}"));

    private static int PrintVersion()
    {
        var version = typeof(Program).Assembly.GetName().Version;
        System.Console.Out.WriteLine($"kiln {version?.ToString(3) ?? "0.0.0"}");
        return 0;
    }
}
