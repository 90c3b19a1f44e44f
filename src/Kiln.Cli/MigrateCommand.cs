using System.Globalization;
using System.Text.Json;
using Kiln.Daemon;
using Kiln.Contracts.Control;

namespace Kiln.Cli;

/// <summary>`kiln migrate --live NAME tcp://HOST:PORT` and `kiln migrate --abort NAME`: asks the (source) daemon to
/// move a running domain to the destination daemon, showing the progress it streams back.</summary>
public static class MigrateCommand
{
    public const string Help = """
        usage: kiln migrate --live NAME tcp://HOST:PORT [--max-downtime MS] [--max-bandwidth MB/s] [--copy-storage] [-c URI]
               kiln migrate --abort NAME [-c URI]

        Moves a running domain to the daemon at tcp://HOST:PORT (its --tcp API) with pre-copy live migration; the
        domain then runs there and is shut off here (its definition stays). The destination's bearer token comes
        from --dest-token-file, $KILN_MIGRATE_TOKEN_FILE or $KILN_MIGRATE_TOKEN (else $KILN_TOKEN/$KILN_TOKEN_FILE);
        its certificate is checked against the system roots, $KILN_TLS_CA, or not at all with KILN_TLS_INSECURE=1.
          --max-downtime MS   the longest pause the guest may see (default 300)
          --max-bandwidth MB/s  the most the migration stream may carry (default: no cap; virsh --bandwidth)
          --copy-storage      stream the writable disks too (no shared storage needed): the destination uses the
                              definition's paths, creating absent images (same format and size; a backing chain is
                              flattened into one image) and removing them if the migration fails
        """;

    private sealed class Settings
    {
        public bool Live, Abort, CopyStorage;
        public int? MaxDowntime, MaxBandwidth;
        public string? TokenFile;
    }

    private static readonly CliOptions<Settings> Options = new CliOptions<Settings>("migrate", "--live NAME tcp://HOST:PORT [options]")
        .Flag("--live", "live-migrate NAME to the daemon at tcp://HOST:PORT", s => s.Live = true)
        .Flag("--abort", "abort NAME's running migration", s => s.Abort = true)
        .Flag("--copy-storage", "stream the writable disks too", s => s.CopyStorage = true)
        .Value("--max-downtime", "MS", "the longest pause the guest may see (default 300)", (s, v) => s.MaxDowntime =
            int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int ms) && ms is >= 1 and <= 600_000
                ? ms : throw new UsageException($"--max-downtime: '{v}' is not a number of milliseconds (1-600000)"))
        .Value("--max-bandwidth", "MB/s", "the most the stream may carry", (s, v) => s.MaxBandwidth =
            int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int mb) && mb is >= 1 and <= 1_000_000
                ? mb : throw new UsageException($"--max-bandwidth: '{v}' is not a number of MB/s (1-1000000)"))
        .Value("--dest-token-file", "FILE", "the destination daemon's bearer token", (s, v) => s.TokenFile = v);

    public static int Execute(IReadOnlyList<string> args, GlobalOptions globals) =>
        ExecuteAsync(args, globals.Connect).GetAwaiter().GetResult();

    private static async Task<int> ExecuteAsync(IReadOnlyList<string> args, string? uri)
    {
        var settings = new Settings();
        var positional = Options.ParseWithArguments(settings, args);
        bool live = settings.Live, abort = settings.Abort, copyStorage = settings.CopyStorage;
        int? maxDowntime = settings.MaxDowntime;
        string? tokenFile = settings.TokenFile;
        string name, destination;
        if (live == abort)
            throw new UsageException("migrate: give --live NAME tcp://HOST:PORT or --abort NAME");
        if (abort)
        {
            if (positional.Count != 1)
                throw new UsageException("migrate --abort NAME");
            using var c = new DaemonClient(uri);
            var r = await c.SendAsync(HttpMethod.Post, $"/v1/domains/{Uri.EscapeDataString(positional[0])}/migrate-abort",
                DaemonJsonContext.Default.MessageResponse, DaemonClient.Json("{}"));
            Console.Out.WriteLine(r.Message);
            return 0;
        }
        if (positional.Count != 2)
            throw new UsageException("migrate --live NAME tcp://HOST:PORT");
        (name, destination) = (positional[0], positional[1]);
        if (!destination.StartsWith("tcp://", StringComparison.Ordinal))
            throw new UsageException($"migrate: the destination must be tcp://HOST:PORT, not '{destination}'");
        var request = new MigrateRequest
        {
            Destination = destination, DestinationToken = DestinationToken(tokenFile), MaxDowntimeMs = maxDowntime,
            MaxBandwidthMBps = settings.MaxBandwidth,
            CopyStorage = copyStorage, Insecure = Environment.GetEnvironmentVariable("KILN_TLS_INSECURE") == "1",
            DestinationCa = Environment.GetEnvironmentVariable("KILN_TLS_CA") is { Length: > 0 } ca ? File.ReadAllText(ca) : null,
        };
        using var client = new DaemonClient(uri);
        string body = JsonSerializer.Serialize(request, DaemonJsonContext.Default.MigrateRequest);
        await using var stream = await client.PostStreamAsync($"/v1/domains/{Uri.EscapeDataString(name)}/migrate",
            DaemonClient.Json(body), CancellationToken.None);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync() is { } line)
        {
            ControlEvent? e;
            try
            {
                e = JsonSerializer.Deserialize(line, ControlJsonContext.Default.ControlEvent);
            }
            catch (JsonException)
            {
                continue;
            }
            switch (e?.Event)
            {
                case "migration":
                    Console.Error.WriteLine(Progress(e));
                    break;
                case "migrated":
                    Console.Out.WriteLine($"{name}: {e.Message}");
                    return 0;
                case "migration-failed":
                    throw new DaemonClientException($"migration of {name} failed, it keeps running here: {e.Message}");
            }
        }
        throw new DaemonClientException($"the daemon ended the migration stream without a result; check 'kiln domstate {name}'");
    }

    internal static string Progress(ControlEvent e)
    {
        string throttle = e.ThrottlePercent > 0 ? $", vCPUs throttled {e.ThrottlePercent}%" : "";
        string disk = e.DiskBytesSent is long diskSent
            ? string.Create(CultureInfo.InvariantCulture, $", disk {diskSent / 1e6:0.0} MB sent, {(e.DiskRemainingBytes ?? 0) / 1e6:0.0} MB dirty")
            : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{e.Phase,-13} round {e.Round,2}: {e.BytesSent / 1e6,8:0.0} MB sent, {e.RemainingPages,7} pages dirty, dirty rate {e.DirtyBytesPerSecond / 1e6,6:0} MB/s, link {e.LinkBytesPerSecond / 1e6,6:0} MB/s, expected downtime {e.ExpectedDowntimeMs,6:0.0} ms{throttle}{disk}");
    }

    private static string? DestinationToken(string? file)
    {
        file ??= Environment.GetEnvironmentVariable("KILN_MIGRATE_TOKEN_FILE") is { Length: > 0 } f ? f : null;
        if (file is not null)
            return File.ReadAllText(file).Trim();
        if (Environment.GetEnvironmentVariable("KILN_MIGRATE_TOKEN") is { Length: > 0 } t)
            return t;
        if (Environment.GetEnvironmentVariable("KILN_TOKEN") is { Length: > 0 } k)
            return k;
        return Environment.GetEnvironmentVariable("KILN_TOKEN_FILE") is { Length: > 0 } kf ? File.ReadAllText(kf).Trim() : null;
    }
}
