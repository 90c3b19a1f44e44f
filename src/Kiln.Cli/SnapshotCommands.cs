using System.Globalization;
using System.Text.Json;
using Kiln.Daemon;
using Kiln.Contracts.Snapshot;
using Kiln.Vmm.Snapshot;

namespace Kiln.Cli;

/// <summary>virsh-style snapshot verbs: save/restore a domain to/from a file, and snapshots the daemon keeps per
/// domain. `snapshot-verify FILE` checks a file locally (every CRC, RAM included) without a daemon.</summary>
public static class SnapshotCommands
{
    public static readonly IReadOnlyList<Verb> Verbs =
    [
        Snapshot("save", "NAME FILE", "write the running domain to FILE, then stop it (virsh save)"),
        Snapshot("restore", "FILE", "resume the domain saved in FILE (it must be defined and shut off)"),
        Snapshot("snapshot", "NAME [--name SNAP]", "keep a snapshot of the running domain"),
        Snapshot("snapshot-list", "NAME", "the domain's kept snapshots"),
        Snapshot("snapshot-revert", "NAME SNAP", "resume from a kept snapshot"),
        Snapshot("snapshot-delete", "NAME SNAP", "delete a kept snapshot"),
        Snapshot("snapshot-verify", "FILE", "check a snapshot file's every CRC, guest RAM included (no daemon)"),
    ];

    private static Verb Snapshot(string name, string synopsis, string summary) =>
        Verb.InFamily(VerbTable.Snapshot, name, synopsis, summary, Execute, connects: name != "snapshot-verify", Help);

    public const string Help = """
        snapshot commands (through 'kiln daemon', -c URI as for the domain verbs; --json for scripts):
          save NAME FILE                     write the running domain to FILE, then stop it (virsh save)
          restore FILE                       resume the domain saved in FILE (it must be defined and shut off)
          snapshot NAME [--name SNAP]        keep a snapshot of the running domain (it pauses only while writing)
          snapshot-list NAME                 the domain's kept snapshots
          snapshot-revert NAME SNAP          resume from a kept snapshot (a running domain is destroyed first)
          snapshot-delete NAME SNAP          delete a kept snapshot
          snapshot-verify FILE               check a snapshot file's every CRC, guest RAM included (no daemon)
        """;

    private sealed class Args
    {
        public string? Uri;
        public bool Json;
        public string? Name;
        public List<string> Positional = [];
    }

    private static CliOptions<Args> Options(string verb)
    {
        var options = new CliOptions<Args>(verb, "NAME [options]").Flag("--json", "machine-readable output", a => a.Json = true);
        return verb == "snapshot" ? options.Value("--name", "SNAP", "the snapshot's name (default: the time)", (a, v) => a.Name = v) : options;
    }

    public static int Execute(string verb, IReadOnlyList<string> raw, GlobalOptions globals)
    {
        var a = new Args { Uri = globals.Connect };
        a.Positional = Options(verb).ParseWithArguments(a, raw);
        if (verb == "snapshot-verify")
            return Verify(Need(a, 0, "FILE", verb));
        using var client = new DaemonClient(a.Uri);
        return ExecuteAsync(verb, a, client).GetAwaiter().GetResult();
    }

    private static string Need(Args a, int index, string what, string verb) => Verb.Need(a.Positional, index, what, verb);

    private static string Escape(string name) => Uri.EscapeDataString(name);

    /// <summary>Paths go to the daemon absolute: it resolves nothing against its own working directory.</summary>
    private static HttpContent FileBody(string file) => DaemonClient.Json(JsonSerializer.Serialize(
        new SnapshotFileRequest { File = Path.GetFullPath(file) }, SnapshotApiJsonContext.Default.SnapshotFileRequest));

    private static async Task<int> ExecuteAsync(string verb, Args a, DaemonClient client)
    {
        var json = SnapshotApiJsonContext.Default;
        var longCall = TimeSpan.FromMinutes(15);
        switch (verb)
        {
            case "save":
            {
                string name = Need(a, 0, "NAME", verb), file = Need(a, 1, "FILE", verb);
                return Done(a, await client.SendAsync(HttpMethod.Post, $"/v1/domains/{Escape(name)}/save",
                    DaemonJsonContext.Default.MessageResponse, FileBody(file), longCall));
            }
            case "restore":
                return Done(a, await client.SendAsync(HttpMethod.Post, "/v1/restore", DaemonJsonContext.Default.MessageResponse,
                    FileBody(Need(a, 0, "FILE", verb)), longCall));
            case "snapshot":
            {
                string name = Need(a, 0, "NAME", verb);
                var body = DaemonClient.Json(JsonSerializer.Serialize(new CreateSnapshotRequest { Name = a.Name }, json.CreateSnapshotRequest));
                var entry = await client.SendAsync(HttpMethod.Post, $"/v1/domains/{Escape(name)}/snapshots", json.SnapshotEntry, body, longCall);
                Console.Out.WriteLine(a.Json ? JsonSerializer.Serialize(entry, json.SnapshotEntry)
                    : $"Domain '{name}' snapshot '{entry.Name}' created ({entry.SizeBytes >> 20} MiB file, guest paused {entry.PausedMs:0} ms)");
                return 0;
            }
            case "snapshot-list":
            {
                var list = await client.SendAsync(HttpMethod.Get, $"/v1/domains/{Escape(Need(a, 0, "NAME", verb))}/snapshots", json.ListSnapshotEntry);
                if (a.Json)
                {
                    Console.Out.WriteLine(JsonSerializer.Serialize(list, json.ListSnapshotEntry));
                    return 0;
                }
                Console.Out.WriteLine($"{"Name",-28} {"Creation Time",-26} {"Size",10}");
                Console.Out.WriteLine(new string('-', 66));
                foreach (var e in list)
                    Console.Out.WriteLine($"{e.Name,-28} {e.CreatedAt.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture),-26} {e.SizeBytes >> 20,7} MiB");
                return 0;
            }
            case "snapshot-revert":
            {
                string name = Need(a, 0, "NAME", verb), snap = Need(a, 1, "SNAP", verb);
                return Done(a, await client.SendAsync(HttpMethod.Post, $"/v1/domains/{Escape(name)}/snapshots/{Escape(snap)}/revert",
                    DaemonJsonContext.Default.MessageResponse, null, longCall));
            }
            case "snapshot-delete":
            {
                string name = Need(a, 0, "NAME", verb), snap = Need(a, 1, "SNAP", verb);
                return Done(a, await client.SendAsync(HttpMethod.Delete, $"/v1/domains/{Escape(name)}/snapshots/{Escape(snap)}",
                    DaemonJsonContext.Default.MessageResponse));
            }
            default:
                throw new UsageException($"unknown snapshot command '{verb}'");
        }
    }

    private static int Done(Args a, MessageResponse response)
    {
        Console.Out.WriteLine(a.Json ? JsonSerializer.Serialize(response, DaemonJsonContext.Default.MessageResponse) : response.Message);
        return 0;
    }

    private static int Verify(string file)
    {
        using var snapshot = SnapshotFile.Open(file);
        snapshot.VerifyRam();
        var spec = snapshot.Spec;
        Console.Out.WriteLine($"{file}: ok: snapshot format {SnapshotFormat.Version}, domain '{snapshot.Info.Name ?? "-"}', saved " +
            $"{snapshot.Info.SavedAt.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture)}, " +
            $"{spec.Machine.MemoryBytes >> 20} MiB RAM, {spec.Machine.Cpus} vCPU(s), kernel {spec.Boot.Kernel}");
        return 0;
    }
}
