using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Kiln.Daemon;
using Kiln.Interop;

namespace Kiln.Cli;

/// <summary>The virsh-style verbs, each a call to `kiln daemon`'s API. Tables for people, --json for scripts;
/// `-c URI` (or $KILN_DEFAULT_URI) picks the daemon.</summary>
public static class DomainCommands
{
    public static readonly IReadOnlyList<Verb> Verbs =
    [
        Domain("list", "[--all]", "domains (running and paused; --all adds shut off and crashed)"),
        Domain("define", "FILE", "define a domain from Kiln JSON or libvirt domain XML (- for stdin)"),
        Domain("undefine", "NAME", "remove a shut-off domain's definition"),
        Domain("start", "NAME [--console]", "boot a domain (and attach to its console)"),
        Domain("shutdown", "NAME [--timeout SEC]", "graceful: the ACPI power button (then Ctrl-Alt-Del), and wait"),
        Domain("destroy", "NAME", "stop the VMM at once"),
        Domain("reboot", "NAME", "reset the guest"),
        Domain("suspend", "NAME", "pause the vCPUs"),
        Domain("resume", "NAME", "continue the vCPUs"),
        Domain("dominfo", "NAME", "details"),
        Domain("domstate", "NAME", "state (with reason)"),
        Domain("console", "NAME [--history]", "attach to the serial console (Ctrl-] detaches)"),
        Domain("attach-disk", "NAME SOURCE TARGET [--readonly] [--format raw]", "add a disk to the persistent definition"),
        Domain("detach-disk", "NAME TARGET", "remove a disk from the persistent definition"),
        Domain("domstats", "NAME", "exits by reason, vCPU times, block and net counters, uptime, RSS"),
        Domain("event", "[--domain NAME] [--timeout SEC]", "stream lifecycle events"),
        Domain("autostart", "NAME [--disable]", "start the domain when the daemon starts"),
        Domain("dumpxml", "NAME", "the definition as libvirt XML"),
        Domain("dump", "NAME", "the definition as Kiln JSON"),
    ];

    private static Verb Domain(string name, string synopsis, string summary) =>
        Verb.InFamily(VerbTable.Domain, name, synopsis, summary, Execute, connects: true, Help);

    public const string Help = """
        virsh-style commands (they talk to 'kiln daemon'; -c unix:///PATH or -c tcp://HOST:PORT, default
        $KILN_DEFAULT_URI or unix:///run/kiln/kiln.sock; --json for machine-readable output):
          list [--all]                       domains (running and paused; --all adds shut off and crashed)
          define FILE                        define a domain from Kiln JSON or libvirt domain XML (- for stdin)
          undefine NAME                      remove a shut-off domain's definition
          start NAME [--console]             boot a domain (and attach to its console)
          shutdown NAME [--timeout SEC]      graceful: the ACPI power button (then Ctrl-Alt-Del), and wait (default 60 s) for power-off
          destroy NAME                       stop the VMM at once
          reboot NAME                        reset the guest
          suspend NAME / resume NAME         pause / continue the vCPUs
          dominfo NAME / domstate NAME       details / state (with reason)
          domstats NAME                      exits by reason, vCPU times, block and net counters, uptime, RSS
          console NAME [--history]           attach to the serial console (Ctrl-] detaches)
          attach-disk NAME SOURCE TARGET [--readonly] [--format raw]
          detach-disk NAME TARGET            change the persistent definition (applies at next start)
          autostart NAME [--disable]         start the domain when the daemon starts
          dumpxml NAME / dump NAME           the definition as libvirt XML / Kiln JSON
          event [--domain NAME] [--timeout SEC]  stream lifecycle events
        """;

    private sealed class Args
    {
        public string? Uri;
        public bool Json;
        public bool All;
        public bool Readonly;
        public bool Disable;
        public bool Console;
        public bool History;
        public double? Timeout;
        public string? Format;
        public string? Domain;
        public List<string> Positional = [];
    }

    /// <summary>The options of the domain verbs, one table for the family (as virsh's).</summary>
    private static CliOptions<Args> Options(string verb) => new CliOptions<Args>(verb, "NAME [options]")
        .Flag("--json", "machine-readable output", a => a.Json = true)
        .Flag("--all", "list: shut-off and crashed domains too", a => a.All = true)
        .Flag("--readonly", "attach-disk: read-only", a => a.Readonly = true)
        .Flag("--disable", "autostart: turn it off", a => a.Disable = true)
        .Flag("--console", "start: attach to the console", a => a.Console = true)
        .Flag("--history", "console: replay recent output first", a => a.History = true)
        .Value("--format|--driver|--subdriver", "FMT", "attach-disk: raw or qcow2", (a, v) => a.Format = v)
        .Value("--domain", "NAME", "event: only this domain's", (a, v) => a.Domain = v)
        .Value("--timeout", "SEC", "shutdown, event: seconds to wait", (a, v) => a.Timeout =
            double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t >= 0
                ? t : throw new UsageException($"{verb}: --timeout needs a number of seconds"));

    private static string Need(Args a, int index, string what, string verb) => Verb.Need(a.Positional, index, what, verb);

    public static int Execute(string verb, IReadOnlyList<string> raw, GlobalOptions globals)
    {
        var a = new Args { Uri = globals.Connect };
        a.Positional = Options(verb).ParseWithArguments(a, raw);
        using var client = new DaemonClient(a.Uri);
        return ExecuteAsync(verb, a, client).GetAwaiter().GetResult();
    }

    private static string Name(string name) => Uri.EscapeDataString(name);

    /// <summary>domstats' per-vCPU, block and net lines, named as virsh names them.</summary>
    private static void PrintDeviceStats(Contracts.Control.ControlResponse v)
    {
        foreach (var t in v.VcpuTimes ?? [])
            Print($"  vcpu.{t.Id}.time={(long)(t.CpuTimeSeconds * 1e9)}");
        var disks = v.Disks ?? [];
        Print($"  block.count={disks.Count}");
        for (int i = 0; i < disks.Count; i++)
        {
            var d = disks[i];
            Print($"  block.{i}.name={d.Name}");
            if (d.Path is not null)
                Print($"  block.{i}.path={d.Path}");
            Print($"  block.{i}.rd.reqs={d.ReadRequests}");
            Print($"  block.{i}.rd.bytes={d.ReadBytes}");
            Print($"  block.{i}.wr.reqs={d.WriteRequests}");
            Print($"  block.{i}.wr.bytes={d.WriteBytes}");
            Print($"  block.{i}.fl.reqs={d.Flushes}");
            Print($"  block.{i}.errors={d.Errors}");
        }
        var nics = v.Nics ?? [];
        Print($"  net.count={nics.Count}");
        for (int i = 0; i < nics.Count; i++)
        {
            var n = nics[i];
            Print($"  net.{i}.name={n.Tap ?? n.Name}");
            Print($"  net.{i}.rx.bytes={n.RxBytes}");
            Print($"  net.{i}.rx.pkts={n.RxPackets}");
            Print($"  net.{i}.rx.drop={n.RxDropped}");
            Print($"  net.{i}.tx.bytes={n.TxBytes}");
            Print($"  net.{i}.tx.pkts={n.TxPackets}");
            Print($"  net.{i}.tx.drop={n.TxDropped}");
        }
    }

    private static async Task<int> ExecuteAsync(string verb, Args a, DaemonClient client)
    {
        var json = DaemonJsonContext.Default;
        switch (verb)
        {
            case "list":
            {
                var list = await client.SendAsync(HttpMethod.Get, "/v1/domains" + (a.All ? "?all=true" : ""), json.ListDomainSummary);
                if (a.Json)
                    Print(JsonSerializer.Serialize(list, json.ListDomainSummary));
                else
                {
                    var rows = list.Select(d => new[] { d.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-", d.Name, d.State }).ToList();
                    PrintTable(["Id", "Name", "State"], rows);
                }
                return 0;
            }
            case "define":
            {
                string file = Need(a, 0, "FILE", verb);
                string text = file == "-" ? await Console.In.ReadToEndAsync() : await File.ReadAllTextAsync(file);
                var info = await client.SendAsync(HttpMethod.Post, "/v1/domains", json.DomainInfo, new StringContent(text, Encoding.UTF8,
                    text.TrimStart().StartsWith('<') ? "application/xml" : "application/json"));
                Print(a.Json ? JsonSerializer.Serialize(info, json.DomainInfo) : $"Domain '{info.Name}' defined from {file}");
                return 0;
            }
            case "undefine":
                return await Simple(client, a, HttpMethod.Delete, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}");
            case "start":
            {
                string name = Need(a, 0, "NAME", verb);
                int status = await Simple(client, a, HttpMethod.Post, $"/v1/domains/{Name(name)}/start");
                return a.Console ? await ConsoleAsync(client, name, a.History) : status;
            }
            case "shutdown":
            {
                string name = Need(a, 0, "NAME", verb);
                double timeout = a.Timeout ?? 60;
                return await Simple(client, a, HttpMethod.Post,
                    $"/v1/domains/{Name(name)}/shutdown?timeout={timeout.ToString(CultureInfo.InvariantCulture)}", TimeSpan.FromSeconds(timeout + 30));
            }
            case "destroy" or "reboot" or "suspend" or "resume":
                return await Simple(client, a, HttpMethod.Post, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/{verb}");
            case "dominfo":
            {
                var info = await client.SendAsync(HttpMethod.Get, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}", json.DomainInfo);
                if (a.Json)
                {
                    Print(JsonSerializer.Serialize(info, json.DomainInfo));
                    return 0;
                }
                var rows = new List<(string, string)>
                {
                    ("Id", info.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"), ("Name", info.Name), ("UUID", info.Uuid ?? ""),
                    ("OS Type", "hvm"), ("State", info.State), ("Reason", info.Reason ?? ""), ("CPU(s)", info.Vcpus.ToString(CultureInfo.InvariantCulture)),
                    ("Max memory", $"{info.MemoryMiB * 1024} KiB"), ("Used memory", $"{info.MemoryMiB * 1024} KiB"),
                    ("Persistent", "yes"), ("Autostart", info.Autostart ? "enable" : "disable"),
                    ("Kernel", info.Definition?.Os.Kernel ?? ""),
                };
                if (info.UptimeSeconds is double up)
                    rows.Add(("Uptime", $"{up:0.0} s"));
                foreach (var (k, v) in rows)
                    Print($"{k + ":",-16}{v}");
                return 0;
            }
            case "domstate":
            {
                var s = await client.SendAsync(HttpMethod.Get, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/state", json.DomainSummary);
                Print(a.Json ? JsonSerializer.Serialize(s, json.DomainSummary) : s.Reason is null ? s.State : $"{s.State} ({s.Reason})");
                return 0;
            }
            case "domstats":
            {
                var s = await client.SendAsync(HttpMethod.Get, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/stats", json.DomainStats);
                if (a.Json)
                {
                    Print(JsonSerializer.Serialize(s, json.DomainStats));
                    return 0;
                }
                Print($"Domain: '{s.Name}'");
                Print($"  state.state={s.State}");
                if (s.Vmm is { } v)
                {
                    Print($"  vcpu.current={v.Vcpus}");
                    Print($"  balloon.current={(v.MemoryBytes ?? 0) / 1024}");
                    Print($"  uptime.seconds={v.UptimeSeconds:0.000}");
                    Print($"  boots={v.Boots}");
                    if (s.CpuTimeSeconds is double cpu)
                        Print($"  cpu.time={(long)(cpu * 1e9)}");
                    if (s.RssBytes is long rss)
                        Print($"  vmm.rss={rss / 1024}");
                    Print($"  console.bytes={v.ConsoleBytes}");
                    foreach (var (reason, count) in v.Exits ?? [])
                        Print($"  exits.{reason.ToLowerInvariant()}={count}");
                    Print($"  pio.unhandled.reads={v.UnhandledPortReads}");
                    Print($"  pio.unhandled.writes={v.UnhandledPortWrites}");
                    PrintDeviceStats(v);
                }
                return 0;
            }
            case "dumpxml":
                Console.Out.Write(await client.SendRawAsync(HttpMethod.Get, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/xml"));
                return 0;
            case "dump":
                Print(await client.SendRawAsync(HttpMethod.Get, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/definition"));
                return 0;
            case "autostart":
            {
                string body = a.Disable ? "{\"enabled\":false}" : "{\"enabled\":true}";
                return await Simple(client, a, HttpMethod.Put, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/autostart", null, DaemonClient.Json(body));
            }
            case "attach-disk":
            {
                var request = new AttachDiskRequest
                {
                    Source = Path.GetFullPath(Need(a, 1, "SOURCE", verb)), Target = Need(a, 2, "TARGET", verb), Format = a.Format, ReadOnly = a.Readonly,
                };
                return await Simple(client, a, HttpMethod.Post, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/disks", null,
                    DaemonClient.Json(JsonSerializer.Serialize(request, json.AttachDiskRequest)));
            }
            case "detach-disk":
                return await Simple(client, a, HttpMethod.Delete, $"/v1/domains/{Name(Need(a, 0, "NAME", verb))}/disks/{Name(Need(a, 1, "TARGET", verb))}");
            case "console":
            {
                string name = Need(a, 0, "NAME", verb);
                // An unknown domain or a stopped one: one clear line before the WebSocket.
                var s = await client.SendAsync(HttpMethod.Get, $"/v1/domains/{Name(name)}/state", json.DomainSummary);
                if (s.State is not ("running" or "paused"))
                    throw new DaemonClientException($"domain '{name}' is not running");
                return await ConsoleAsync(client, name, a.History);
            }
            case "event":
                return await EventsAsync(client, a);
            default:
                throw new UsageException($"unknown command '{verb}'");
        }
    }

    private static async Task<int> Simple(DaemonClient client, Args a, HttpMethod method, string path, TimeSpan? timeout = null, HttpContent? body = null)
    {
        string text = await client.SendRawAsync(method, path, body, timeout);
        if (a.Json)
            Print(text);
        else
        {
            var m = JsonSerializer.Deserialize(text, DaemonJsonContext.Default.MessageResponse);
            Print(m is null ? text : char.ToUpperInvariant(m.Message[0]) + m.Message[1..]);
        }
        return 0;
    }

    private static void Print(string line) => Console.Out.WriteLine(line);

    private static void PrintTable(string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Row(string[] cells) => " " + string.Join("   ", cells.Select((c, i) => c.PadRight(widths[i]))).TrimEnd();
        Print(Row(header));
        Print(new string('-', widths.Sum() + 3 * (widths.Length - 1) + 2));
        foreach (var r in rows)
            Print(Row(r));
        Print("");
    }

    private static async Task<int> EventsAsync(DaemonClient client, Args a)
    {
        using var cts = new CancellationTokenSource();
        if (a.Timeout is double t)
            cts.CancelAfter(TimeSpan.FromSeconds(t));
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        try
        {
            await using var stream = await client.OpenStreamAsync("/v1/events", cts.Token);
            using var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync(cts.Token) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                    continue;
                var e = JsonSerializer.Deserialize(line[6..], DaemonJsonContext.Default.LifecycleEvent);
                if (e is null || (a.Domain is not null && e.Domain != a.Domain))
                    continue;
                Print(a.Json ? line[6..] : $"{e.Time.ToLocalTime():yyyy-MM-dd HH:mm:ss.fff}: event '{e.Event}' for domain '{e.Domain}'" + (e.Detail is null ? "" : $": {e.Detail}"));
                Console.Out.Flush();
            }
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }

    private const byte DetachKey = 0x1D; // Ctrl-]

    private static async Task<int> ConsoleAsync(DaemonClient client, string name, bool history)
    {
        using var cts = new CancellationTokenSource();
        using var ws = await client.ConnectWebSocketAsync($"/v1/domains/{Name(name)}/console" + (history ? "?history=true" : ""), cts.Token);
        bool tty = Terminal.IsTerminal(0);
        byte[]? saved = tty ? Terminal.MakeRaw(0) : null;
        if (tty)
            Console.Error.Write($"Connected to domain '{name}'\r\nEscape character is ^] (Ctrl + ])\r\n");
        try
        {
            var input = new Thread(() =>
            {
                var buffer = new byte[256];
                try
                {
                    while (!cts.IsCancellationRequested)
                    {
                        int n = Libc.Read(0, buffer);
                        if (n == 0)
                            return; // end of input: keep showing output until the domain stops
                        int detach = Array.IndexOf(buffer, DetachKey, 0, n);
                        if (tty && detach >= 0)
                        {
                            if (detach > 0)
                                ws.SendAsync(buffer.AsMemory(0, detach), WebSocketMessageType.Binary, true, CancellationToken.None).GetAwaiter().GetResult();
                            cts.Cancel();
                            return;
                        }
                        ws.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, true, CancellationToken.None).GetAwaiter().GetResult();
                    }
                }
                catch (Exception e) when (e is SystemCallException or WebSocketException or ObjectDisposedException or InvalidOperationException)
                {
                }
            }) { IsBackground = true, Name = "console-stdin" };
            input.Start();
            var receive = new byte[8192];
            try
            {
                while (true)
                {
                    var r = await ws.ReceiveAsync(receive, cts.Token);
                    if (r.MessageType == WebSocketMessageType.Close)
                        break;
                    Libc.WriteAll(1, receive.AsSpan(0, r.Count));
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
            }
        }
        finally
        {
            if (saved is not null)
                Terminal.Restore(0, saved);
        }
        if (tty)
            Console.Error.WriteLine();
        return 0;
    }
}
