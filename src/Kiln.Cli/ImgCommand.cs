using System.Globalization;
using Kiln.Storage;

namespace Kiln.Cli;

/// <summary>`kiln img`: create, info, convert, check and resize disk images (raw, qcow2), with qemu-img's flags and
/// exit codes (0 ok, 1 error, 2 corruption found, 3 leaks found).</summary>
public static class ImgCommand
{
    public const string Help = """
        usage: kiln img <subcommand> [options]

          create [-f qcow2|raw] [-b BACKING [-F FMT]] [-o cluster_size=N] FILE [SIZE]
                 SIZE in bytes, or with a k/M/G/T suffix; defaults to the backing file's size
          info [--json] [--backing-chain] [-f FMT] FILE
          convert [-f FMT] -O qcow2|raw [-o cluster_size=N] [-p] SRC DST
                 all-zero clusters are skipped (the output stays sparse); -p shows progress on stderr
          check [--repair] [-r leaks|all] FILE
                 exit 0 clean, 2 corruption, 3 leaked clusters only; --repair fixes leaks
          resize [-f FMT] FILE [+]SIZE   (grow only)
        """;

    public static int Execute(List<string> args)
    {
        if (args.Count == 0)
            throw new UsageException("img: missing subcommand (create, info, convert, check, resize)");
        var rest = args.Skip(1).ToList();
        return args[0] switch
        {
            "create" => Create(rest),
            "info" => Info(rest),
            "convert" => Convert(rest),
            "check" => Check(rest),
            "resize" => Resize(rest),
            _ => throw new UsageException($"img: unknown subcommand '{args[0]}' (create, info, convert, check, resize)"),
        };
    }

    private static int Create(List<string> args)
    {
        var p = Parse("create", args, ["-f", "-b", "-F", "-o"], []);
        string format = p.Get("-f") ?? "qcow2";
        string? backing = p.Get("-b");
        string? backingFormat = p.Get("-F");
        int clusterSize = ClusterSize(p.Get("-o"));
        if (p.Positional.Count is < 1 or > 2)
            throw new UsageException("img create: expected FILE [SIZE]");
        string file = p.Positional[0];
        ulong? size = p.Positional.Count == 2 ? ParseSize(p.Positional[1]) : null;
        if (format == "raw")
        {
            if (backing is not null)
                throw new UsageException("img create: raw images have no backing file");
            ImageCreate.Raw(file, size ?? throw new UsageException("img create: SIZE is required"));
        }
        else if (format == "qcow2")
        {
            if (backing is not null)
            {
                string resolved = Storage.Qcow2.BackingChain.Resolve(file, backing);
                backingFormat ??= DiskImage.Probe(resolved);
                using var b = DiskImage.Open(resolved, backingFormat, readOnly: true);
                size ??= b.Capacity;
            }
            ImageCreate.Qcow2(file, size ?? throw new UsageException("img create: SIZE is required"), clusterSize, backing, backingFormat);
        }
        else
            throw new UsageException($"img create: unsupported format '{format}' (qcow2, raw)");
        Console.Out.WriteLine($"Formatting '{file}', fmt={format} size={size}");
        return 0;
    }

    private static int Info(List<string> args)
    {
        var p = Parse("info", args, ["-f"], ["--json", "--backing-chain"]);
        if (p.Positional.Count != 1)
            throw new UsageException("img info: expected FILE");
        bool json = p.Has("--json") || p.Get("--output") == "json";
        bool chain = p.Has("--backing-chain");
        var infos = chain || !json ? ImageInfo.ReadChain(p.Positional[0], p.Get("-f")) : [ImageInfo.Read(p.Positional[0], p.Get("-f"))];
        if (json)
            Console.Out.WriteLine(ImageInfo.ToJson(infos, asArray: chain));
        else
            Console.Out.Write(string.Join("\n", infos.Select(i => i.ToText())));
        return 0;
    }

    private static int Convert(List<string> args)
    {
        var p = Parse("convert", args, ["-f", "-O", "-o"], ["-p"]);
        if (p.Positional.Count != 2)
            throw new UsageException("img convert: expected SRC DST");
        string output = p.Get("-O") ?? throw new UsageException("img convert: -O FMT is required");
        Action<double>? progress = p.Has("-p") ? pct => Console.Error.Write($"    ({pct:0.00}/100%)\r") : null;
        ImageConvert.Run(p.Positional[0], p.Get("-f"), p.Positional[1], output, ClusterSize(p.Get("-o")), progress);
        if (progress is not null)
            Console.Error.WriteLine();
        return 0;
    }

    private static int Check(List<string> args)
    {
        var p = Parse("check", args, ["-r", "-f"], ["--repair"]);
        if (p.Positional.Count != 1)
            throw new UsageException("img check: expected FILE");
        bool repair = p.Has("--repair") || p.Get("-r") is "leaks" or "all";
        var result = ImageCheck.Run(p.Positional[0], repair);
        Console.Out.Write(result.Report());
        return result.ExitCode;
    }

    private static int Resize(List<string> args)
    {
        var p = Parse("resize", args, ["-f"], []);
        if (p.Positional.Count != 2)
            throw new UsageException("img resize: expected FILE [+]SIZE");
        string spec = p.Positional[1];
        if (spec.StartsWith('-'))
            throw new UsageException("img resize: shrinking is not supported");
        bool relative = spec.StartsWith('+');
        ulong size = ParseSize(relative ? spec[1..] : spec);
        ImageResize.Run(p.Positional[0], p.Get("-f"), relative ? null : size, relative ? size : null);
        Console.Out.WriteLine("Image resized.");
        return 0;
    }

    /// <summary>qemu-img sizes: bytes, or a number (may be fractional) with k/K, M, G, T, P, E.</summary>
    public static ulong ParseSize(string text) => SizeParser.ParseBytes(text, "size");

    private static int ClusterSize(string? options)
    {
        int size = ImageCreate.DefaultClusterSize;
        foreach (var option in (options ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = option.IndexOf('=');
            string key = eq < 0 ? option : option[..eq];
            string? value = eq < 0 ? null : option[(eq + 1)..];
            if (key == "cluster_size" && value is not null)
                size = (int)Math.Min(ParseSize(value), int.MaxValue);
            else
                throw new UsageException($"unsupported option '{option}' (cluster_size=N)");
        }
        return size;
    }

    private sealed record Parsed(Dictionary<string, string> Values, HashSet<string> Flags, List<string> Positional)
    {
        public string? Get(string key) => Values.GetValueOrDefault(key);
        public bool Has(string flag) => Flags.Contains(flag);
    }

    /// <summary>One subcommand's flags through the CLI's option parser: qemu-img's short names, each valued
    /// option or flag a row.</summary>
    private static Parsed Parse(string subcommand, List<string> args, string[] valued, string[] flags)
    {
        var parsed = new Parsed([], [], []);
        var options = new CliOptions<Parsed>($"img {subcommand}", "[options]")
            .Value("--output", "FMT", "json or human", (p, v) => p.Values["--output"] = v);
        foreach (string name in valued)
            options.Value(name, "VALUE", "", (p, v) => p.Values[name] = v);
        foreach (string name in flags)
            options.Flag(name, "", p => p.Flags.Add(name));
        parsed.Positional.AddRange(options.ParseWithArguments(parsed, args));
        return parsed;
    }
}
