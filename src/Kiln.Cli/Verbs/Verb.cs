namespace Kiln.Cli;

/// <summary>Options every verb takes, before or after the verb (as virsh takes -c): --debug, and -c/--connect URI
/// for the verbs that talk to a daemon.</summary>
public sealed class GlobalOptions
{
    public bool Debug { get; set; }

    /// <summary>The daemon's URI (unix:///PATH or tcp://HOST:PORT); null: $KILN_DEFAULT_URI or the default socket.</summary>
    public string? Connect { get; set; }

    public bool Help { get; set; }

    /// <summary>Takes the global options out of <paramref name="args"/>. <paramref name="connect"/>: -c/--connect are
    /// this verb's too (for `run`, -c is the kernel command line).</summary>
    public void TakeFrom(List<string> args, bool connect)
    {
        for (int i = 0; i < args.Count;)
        {
            string a = args[i];
            if (a == "--")
                return;
            if (a == "--debug")
            {
                Debug = true;
                args.RemoveAt(i);
            }
            else if (a is "--help" or "-h")
            {
                Help = true;
                args.RemoveAt(i);
            }
            else if (connect && a is "-c" or "--connect")
            {
                Connect = i + 1 < args.Count ? args[i + 1] : throw new UsageException($"{a} needs a value (URI)");
                args.RemoveRange(i, 2);
            }
            else if (connect && a.StartsWith("--connect=", StringComparison.Ordinal))
            {
                Connect = a["--connect=".Length..];
                args.RemoveAt(i);
            }
            else
                i++;
        }
    }
}

/// <summary>One `kiln` verb: its name, the group its help is listed in, a one-line summary, its handler, and
/// whether it talks to a daemon (then -c/--connect is its option).</summary>
public sealed record Verb(string Name, string Group, string Summary, Func<IReadOnlyList<string>, GlobalOptions, int> Run,
    bool Connects = false, Func<string>? Help = null, bool Hidden = false, string Synopsis = "")
{
    /// <summary>A verb of a family that shares one handler and one help text; its summary lines up its synopsis.</summary>
    public static Verb InFamily(string group, string name, string synopsis, string summary,
        Func<string, IReadOnlyList<string>, GlobalOptions, int> execute, bool connects, string help) =>
        new(name, group, summary, (args, globals) => execute(name, args, globals), connects, () => help, Synopsis: synopsis);

    /// <summary>The positional argument at <paramref name="index"/>, or a usage error naming it.</summary>
    public static string Need(IReadOnlyList<string> positional, int index, string what, string verb) =>
        index < positional.Count ? positional[index] : throw new UsageException($"{verb}: {what} is required");
}
