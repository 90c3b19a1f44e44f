using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Kiln.GuestTests.Support;

/// <summary>A source VMM (with a control socket) and a destination VMM (<c>--incoming</c>) in two network namespaces
/// joined by a veth pair, for migration tests that need more than the test guest's defaults: extra run options
/// (disks, a Linux kernel), environment for the destination, a console to type into.</summary>
public sealed partial class MigrationPair(ITestOutputHelper log) : IDisposable
{
    public const string Token = "one-time-token-for-this-test";
    private readonly List<VmmProcess> _vmms = [];

    public VethNamespaces Net { get; } = new();
    public string SourceSocket { get; } = Path.Combine(Path.GetTempPath(), $"kmig-{Guid.NewGuid():N}.sock");
    public string DestinationSocket { get; } = Path.Combine(Path.GetTempPath(), $"kmigd-{Guid.NewGuid():N}.sock");

    public VmmProcess StartSource(IEnumerable<string> runArgs)
    {
        var p = new VmmProcess(Net.A, ["run", .. runArgs, "--control-socket", SourceSocket]);
        _vmms.Add(p);
        return p;
    }

    /// <summary>The destination (with its own control socket, so a test can type into its console); returns the
    /// port it listens on.</summary>
    public (VmmProcess Vmm, int Port) StartDestination(IEnumerable<string> runArgs, IDictionary<string, string>? env = null)
    {
        var environment = new Dictionary<string, string>(env ?? new Dictionary<string, string>())
        {
            ["KILN_MIGRATION_TOKEN"] = Token,
        };
        var p = new VmmProcess(Net.B, ["run", .. runArgs, "--control-socket", DestinationSocket,
            "--incoming", $"tcp:{Net.AddressB}:0"], environment);
        _vmms.Add(p);
        Assert.True(p.WaitFor((_, e) => WaitingRegex().IsMatch(e), TimeSpan.FromSeconds(60)), "the destination did not listen");
        int port = int.Parse(WaitingRegex().Match(p.Stderr).Groups[1].Value, CultureInfo.InvariantCulture);
        return (p, port);
    }

    /// <summary>Starts the migration over the control socket; the watch then reports its progress and outcome.</summary>
    public JsonElement Migrate(int port, int? maxDowntimeMs = null)
    {
        string extra = maxDowntimeMs is int ms ? $",\"maxDowntimeMs\":{ms}" : "";
        return VmmProcess.Control(SourceSocket,
            $"{{\"cmd\":\"migrate\",\"uri\":\"tcp:{Net.AddressB}:{port}\",\"token\":\"{Token}\"{extra}}}");
    }

    [GeneratedRegex(@"waiting for a migration on tcp:[0-9.]+:(\d+)")]
    private static partial Regex WaitingRegex();

    [GeneratedRegex(@"tick (\d+)")]
    private static partial Regex TickRegex();

    /// <summary>The test guest's "tick N" counters in console output.</summary>
    public static List<long> Ticks(string text) =>
        TickRegex().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    public void Dispose()
    {
        foreach (var v in _vmms)
        {
            string console = v.Stdout;
            log.WriteLine($"--- vmm {v.Pid} stderr\n{v.Stderr}--- vmm {v.Pid} console (end)\n{console[Math.Max(0, console.Length - 3000)..]}");
            v.Dispose();
        }
        Net.Dispose();
    }
}
