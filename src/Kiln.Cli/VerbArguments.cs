namespace Kiln.Cli;

/// <summary>The command line of one daemon verb: <c>-c/--connect URI</c>, <c>--json</c> and positionals here, the
/// verb family's own options in <see cref="TakeOption"/>. An option nobody knows is one usage error that names where
/// the help is.</summary>
internal abstract class VerbArguments
{
    public string? Uri;
    public bool Json;
    public readonly List<string> Positional = [];

    /// <summary>Takes an option this verb family knows (reading its value with <paramref name="value"/>); false for one
    /// it does not.</summary>
    protected abstract bool TakeOption(string verb, string option, Func<string> value);

    protected void Parse(string verb, IReadOnlyList<string> raw, string help)
    {
        for (int i = 0; i < raw.Count; i++)
        {
            string s = raw[i];
            string Next() => i + 1 < raw.Count ? raw[++i] : throw new UsageException($"{verb}: {s} needs a value");
            switch (s)
            {
                case "-c" or "--connect": Uri = Next(); break;
                case "--json": Json = true; break;
                default:
                    if (!s.StartsWith("--", StringComparison.Ordinal))
                        Positional.Add(s);
                    else if (!TakeOption(verb, s, Next))
                        throw new UsageException($"{verb}: unknown option '{s}' (see '{help}')");
                    break;
            }
        }
    }

    /// <summary>The positional argument at <paramref name="index"/>, or a usage error naming it.</summary>
    public string Need(int index, string what, string verb) =>
        index < Positional.Count ? Positional[index] : throw new UsageException($"{verb}: {what} is required");
}
