using System.Globalization;
using System.Text.Json;
using Kiln.Daemon;
using Kiln.Vmm.Control;

namespace Kiln.Cli;

/// <summary>`kiln migrate --live NAME tcp://HOST:PORT` and `kiln migrate --abort NAME`: asks the (source) daemon to
/// move a running domain to the destination daemon, showing the progress it streams back.</summary>
public static class MigrateCommand
{
    public const string Help = """
        usage: kiln migrate --live NAME tcp://HOST:PORT [--max-downtime MS] [--copy-storage] [-c URI]
               kiln migrate --abort NAME [-c URI]

        Moves a running domain to the daemon at tcp://HOST:PORT (its --tcp API) with pre-copy live migration; the
        domain then runs there and is shut off here (its definition stays). The destination's bearer token comes
        from --dest-token-file, $KILN_MIGRATE_TOKEN_FILE or $KILN_MIGRATE_TOKEN (else $KILN_TOKEN/$KILN_TOKEN_FILE);
        its certificate is checked against the system roots, $KILN_TLS_CA, or not at all with KILN_TLS_INSECURE=1.
          --max-downtime MS   the longest pause the guest may see (default 300)
          --copy-storage      stream the writable disks too (no shared storage needed): the destination uses the
                              definition's paths, creating absent images (same format and size; a backing chain is
                              flattened into one image) and removing them if the migration fails
        """;

    public static int Execute(IReadOnlyList<string> args)
    {
        try
        {
            return ExecuteAsync(args).GetAwaiter().GetResult();
        }
        catch (DaemonClientException e)
        {
            Console.Error.WriteLine($"kiln: error: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> ExecuteAsync(IReadOnlyList<string> args)
    {
        string? uri = null, name = null, destination = null, tokenFile = null;
        bool live = false, abort = false, copyStorage = false;
        int? maxDowntime = null;
        var positional = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new UsageException($"migrate: {a} needs a value");
            switch (a)
            {
                case "--live": live = true; break;
                case "--abort": abort = true; break;
                case "--copy-storage": copyStorage = true; break;
                case "--max-downtime":
                    string v = Next();
                    maxDowntime = int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int ms) && ms is >= 1 and <= 600_000
                        ? ms : throw new UsageException($"--max-downtime: '{v}' is not a number of milliseconds (1-600000)");
                    break;
                case "--dest-token-file": tokenFile = Next(); break;
                case "-c" or "--connect": uri = Next(); break;
                default:
                    if (a.StartsWith('-'))
                        throw new UsageException($"migrate: unknown option {a}");
                    positional.Add(a);
                    break;
            }
        }
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
                    Console.Error.WriteLine($"kiln: error: migration of {name} failed, it keeps running here: {e.Message}");
                    return 1;
            }
        }
        Console.Error.WriteLine($"kiln: error: the daemon ended the migration stream without a result; check 'kiln domstate {name}'");
        return 1;
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
