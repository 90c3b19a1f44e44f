namespace Kiln.Cli;

/// <summary>A table-driven option parser: each option is a row with its names, whether it takes a value, its help
/// text and what it does. Unknown options and missing values are usage errors with one clear line.</summary>
public sealed class CliOptions<T>(string command, string synopsis)
{
    private sealed record Option(string[] Names, string? ValueName, string Help, Action<T, string> Apply);

    private readonly List<Option> _options = [];

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

    public void Parse(T target, IReadOnlyList<string> args)
    {
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string? inlineValue = null;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--") && eq > 0)
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
    }

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
public sealed class UsageException(string message) : Exception(message);
