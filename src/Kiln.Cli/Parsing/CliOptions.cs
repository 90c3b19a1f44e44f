namespace Kiln.Cli;

/// <summary>The one option parser of every `kiln` verb: each option is a row with its names, whether it takes a
/// value, its help text and what it does. `--name=value` and `--name value` both work; `--` ends the options; a
/// token that starts with '-' and a digit (`-1M`) is an argument. Unknown options, missing values and stray
/// arguments are usage errors with one clear line.</summary>
public sealed class CliOptions<T>(string command, string synopsis)
{
    private sealed record Option(string[] Names, string? ValueName, string Help, Action<T, string> Apply);

    private readonly List<Option> _options = [];

    public string Command => command;

    public CliOptions<T> Flag(string names, string help, Action<T> apply)
    {
        _options.Add(new Option(names.Split('|'), null, help, (t, _) => apply(t)));
        return this;
    }

    public CliOptions<T> Value(string names, string valueName, string help, Action<T, string> apply)
    {
        _options.Add(new Option(names.Split('|'), valueName, help, apply));
        return this;
    }

    /// <summary>Parses options only: any argument is a usage error.</summary>
    public void Parse(T target, IReadOnlyList<string> args)
    {
        var positional = ParseWithArguments(target, args);
        if (positional.Count > 0)
            throw new UsageException($"{command}: unexpected argument '{positional[0]}' (see 'kiln {command} --help')");
    }

    /// <summary>Parses options and returns the arguments between them, in order.</summary>
    public List<string> ParseWithArguments(T target, IReadOnlyList<string> args)
    {
        var positional = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                positional.AddRange(args.Skip(i + 1));
                break;
            }
            if (!IsOption(arg))
            {
                positional.Add(arg);
                continue;
            }
            string? inlineValue = null;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inlineValue = arg[(eq + 1)..];
                arg = arg[..eq];
            }
            var option = _options.FirstOrDefault(o => o.Names.Contains(arg))
                ?? throw new UsageException($"{command}: unknown option '{args[i]}' (see 'kiln {command} --help')");
            if (option.ValueName is null)
            {
                if (inlineValue is not null)
                    throw new UsageException($"{command}: {arg} takes no value");
                option.Apply(target, "");
                continue;
            }
            string? value = inlineValue ?? (i + 1 < args.Count ? args[++i] : null);
            if (value is null)
                throw new UsageException($"{command}: {arg} needs a value ({option.ValueName})");
            option.Apply(target, value);
        }
        return positional;
    }

    private static bool IsOption(string arg) => arg.Length > 1 && arg[0] == '-' && !char.IsDigit(arg[1]);

    public string Help()
    {
        var lines = new List<string> { $"usage: kiln {command} {synopsis}", "" };
        foreach (var o in _options)
        {
            string left = string.Join(", ", o.Names) + (o.ValueName is null ? "" : " " + o.ValueName);
            lines.Add($"  {left,-28} {o.Help}");
        }
        return string.Join('\n', lines);
    }
}

/// <summary>The user typed something Kiln does not understand; printed as one line, exit status 2.</summary>
public sealed class UsageException(string message) : KilnException(message)
{
    public override int ExitCode => 2;
}
