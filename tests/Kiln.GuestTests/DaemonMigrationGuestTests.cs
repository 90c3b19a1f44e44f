using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>`kiln migrate --live` between two daemons, each in its own network namespace (joined by a veth pair):
/// the destination daemon serves its TCP API with TLS and a token, prepares the incoming VMM, and the domain ends up
/// running there with every tick of the `test=dirty` guest kept, shut off (definition kept) on the source.</summary>
public sealed partial class DaemonMigrationGuestTests(ITestOutputHelper log) : IDisposable
{
    private const string ApiToken = "destination-daemon-token-0123456789";
    private readonly VethNamespaces _net = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kdm-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<Process> _daemons = [];

    private sealed record Daemon(string Socket, string StateDir)
    {
        public string Uri => "unix://" + Socket;
        public string Log(string name) => Path.Combine(StateDir, "log", name + ".log");
    }

    public void Dispose()
    {
        foreach (var p in Process.GetProcesses())
        {
            try
            {
                if (!_daemons.Any(d => d.Id == p.Id) && File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(_dir, StringComparison.Ordinal))
                    p.Kill();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
            }
            finally
            {
                p.Dispose();
            }
        }
        foreach (var d in _daemons)
        {
            try
            {
                d.Kill();
                d.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
            }
        }
        _net.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Daemon StartDaemon(string netns, string id, params string[] extra) => StartDaemon(netns, id, null, extra);

    /// <summary><paramref name="bind"/>: the daemon (and its VMMs) see directory From mounted over directory Over,
    /// in a mount namespace of their own (another host's disks at the same path).</summary>
    private Daemon StartDaemon(string netns, string id, (string From, string Over)? bind, params string[] extra)
    {
        var d = new Daemon(Path.Combine(_dir, id + ".sock"), Path.Combine(_dir, id));
        string[] command = ["ip", "netns", "exec", netns, "dotnet", Support.Kiln.CliDll, "daemon", "--socket", d.Socket, "--state-dir", d.StateDir, .. extra];
        if (bind is var (from, over))
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"", from, over, .. command];
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in command[1..])
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => Log($"{id}: {e.Data}");
        p.ErrorDataReceived += (_, e) => Log($"{id}: {e.Data}");
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _daemons.Add(p);
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            Assert.False(p.HasExited, $"daemon {id} exited");
            if (File.Exists(d.Socket) && Cli(d, "list").ExitCode == 0)
                return d;
            Thread.Sleep(100);
        }
        throw new TimeoutException($"daemon {id} did not come up");
    }

    private void Log(string? line)
    {
        if (line is null)
            return;
        try
        {
            log.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
        }
    }

    private ProcessRunner.Result Cli(Daemon d, params string[] args) => CliWithEnv(d, [], args);

    private ProcessRunner.Result CliWithEnv(Daemon d, Dictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Support.Kiln.CliDll }.Concat(args).Concat(["-c", d.Uri]))
            psi.ArgumentList.Add(a);
        foreach (var (k, v) in env)
            psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(TimeSpan.FromSeconds(180));
        if (!exited)
            p.Kill(true);
        p.WaitForExit();
        var r = new ProcessRunner.Result(p.ExitCode, stdout.Result, stderr.Result, TimeSpan.Zero, !exited);
        Log($"$ kiln {string.Join(' ', args)} -> {r.ExitCode}\n{r.Stdout}{r.Stderr}");
        return r;
    }

    private static string ReadShared(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(f).ReadToEnd();
    }

    [GeneratedRegex(@"tick (\d+)")]
    private static partial Regex TickRegex();

    private static List<long> Ticks(string text) =>
        TickRegex().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    [GeneratedRegex(@"^tick (\d+)$", RegexOptions.Multiline)]
    private static partial Regex TickLineRegex();

    private static List<long> LineTicks(string text) =>
        TickLineRegex().Matches(text).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    private static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (condition())
                return true;
            Thread.Sleep(100);
        }
        return condition();
    }

    private void WriteCertificateAndToken()
    {
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=kiln-dest", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Parse(_net.AddressB));
            request.CertificateExtensions.Add(san.Build());
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            File.WriteAllText(Path.Combine(_dir, "cert.pem"), cert.ExportCertificatePem());
            File.WriteAllText(Path.Combine(_dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        }
        File.WriteAllText(Path.Combine(_dir, "token"), ApiToken);
    }

    [KvmFact]
    public void LiveMigrationBetweenDaemonsKeepsTheGuestRunning()
    {
        Directory.CreateDirectory(_dir);
        WriteCertificateAndToken();
        var source = StartDaemon(_net.A, "src");
        var dest = StartDaemon(_net.B, "dst", "--tcp", $"{_net.AddressB}:7443", "--tls-cert", Path.Combine(_dir, "cert.pem"),
            "--tls-key", Path.Combine(_dir, "key.pem"), "--token-file", Path.Combine(_dir, "token"));
        string xml = $"""
            <domain type='kvm'>
              <name>mig1</name>
              <memory unit='MiB'>256</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=dirty</cmdline></os>
            </domain>
            """;
        File.WriteAllText(Path.Combine(_dir, "mig1.xml"), xml);
        Assert.Equal(0, Cli(source, "define", Path.Combine(_dir, "mig1.xml")).ExitCode);
        Assert.Equal(0, Cli(source, "start", "mig1").ExitCode);
        Assert.True(WaitUntil(() => ReadShared(source.Log("mig1")).Contains("tick 3\n"), TimeSpan.FromSeconds(60)), "the guest did not tick");

        // Copy-storage of a domain without a writable disk is refused clearly, and the domain keeps running.
        var copy = CliWithEnv(source, new() { ["KILN_TLS_INSECURE"] = "1", ["KILN_MIGRATE_TOKEN"] = ApiToken },
            "migrate", "--live", "mig1", $"tcp://{_net.AddressB}:7443", "--copy-storage");
        Assert.Equal(1, copy.ExitCode);
        Assert.Contains("has no writable disk to copy", copy.Stderr);

        var r = CliWithEnv(source, new() { ["KILN_TLS_INSECURE"] = "1", ["KILN_MIGRATE_TOKEN"] = ApiToken },
            "migrate", "--live", "mig1", $"tcp://{_net.AddressB}:7443", "--max-downtime", "500");
        Assert.True(r.ExitCode == 0, $"migrate failed: {r.Stderr}");
        Assert.Contains("migrated to", r.Stdout);
        Assert.Contains("precopy", r.Stderr);
        Assert.True(WaitUntil(() => Cli(source, "domstate", "mig1").Stdout.StartsWith("shut off", StringComparison.Ordinal),
            TimeSpan.FromSeconds(20)), "the source domain did not shut off");
        Assert.Contains("migrated", Cli(source, "domstate", "mig1").Stdout);
        Assert.Contains("mig1", Cli(source, "list", "--all").Stdout); // the definition stays
        Assert.Matches(@"mig1\s+running", Cli(dest, "list").Stdout);

        string before = ReadShared(source.Log("mig1"));
        long lastOnSource = Ticks(before).Max();
        Assert.True(WaitUntil(() => Ticks(ReadShared(dest.Log("mig1"))).DefaultIfEmpty().Max() >= lastOnSource + 21, TimeSpan.FromSeconds(60)),
            "the guest did not keep ticking on the destination");
        string after = ReadShared(dest.Log("mig1"));
        // Whole "tick N" lines of the source's log, then of the destination's: each tick at most once, in order, and
        // none missing except the one a log line cut at the switch-over may hide (the log mixes in VMM messages).
        var sourceTicks = LineTicks(before[before.LastIndexOf("starting mig1", StringComparison.Ordinal)..]);
        var destTicks = LineTicks(after[after.LastIndexOf("starting mig1", StringComparison.Ordinal)..]);
        Assert.Equal(Enumerable.Range(1, sourceTicks.Count).Select(i => (long)i), sourceTicks);
        Assert.NotEmpty(destTicks);
        Assert.InRange(destTicks[0], sourceTicks[^1] + 1, sourceTicks[^1] + 2);
        Assert.True(destTicks.Zip(destTicks.Skip(1)).Count(p => p.Second != p.First + 1) <= 1, "ticks went missing on the destination");
        Assert.True(destTicks.Zip(destTicks.Skip(1)).All(p => p.Second > p.First), "a tick repeated on the destination");
        Assert.Matches(@"check \d+ ok", after);
        Assert.DoesNotContain("MISMATCH", after);
        Assert.DoesNotContain("BAD", after);
        Assert.Equal(0, Cli(dest, "destroy", "mig1").ExitCode);
    }

    /// <summary><c>kiln migrate --live --copy-storage</c> between daemons that do not share the disk: the destination
    /// daemon's view of the disk directory is another directory (its own mount namespace), the destination VMM
    /// creates the qcow2 image there, and the `test=disk-writer` guest keeps writing and checking its disk on the
    /// destination.</summary>
    [KvmFact]
    public void CopyStorageMovesTheDiskBetweenDaemons()
    {
        string disks = Path.Combine(_dir, "disks"), destinationDisks = Path.Combine(_dir, "destination-disks");
        Directory.CreateDirectory(disks);
        Directory.CreateDirectory(destinationDisks);
        WriteCertificateAndToken();
        string image = Path.Combine(disks, "vm.qcow2");
        var create = ProcessRunner.Run("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"], TimeSpan.FromSeconds(30));
        Assert.True(create.ExitCode == 0, create.Stderr);
        var source = StartDaemon(_net.A, "src");
        var dest = StartDaemon(_net.B, "dst", (destinationDisks, disks), "--tcp", $"{_net.AddressB}:7443",
            "--tls-cert", Path.Combine(_dir, "cert.pem"), "--tls-key", Path.Combine(_dir, "key.pem"),
            "--token-file", Path.Combine(_dir, "token"));
        string xml = $"""
            <domain type='kvm'>
              <name>cs1</name>
              <memory unit='MiB'>256</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=disk-writer</cmdline></os>
              <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/><target dev='vda'/></disk></devices>
            </domain>
            """;
        File.WriteAllText(Path.Combine(_dir, "cs1.xml"), xml);
        Assert.Equal(0, Cli(source, "define", Path.Combine(_dir, "cs1.xml")).ExitCode);
        Assert.Equal(0, Cli(source, "start", "cs1").ExitCode);
        Assert.True(WaitUntil(() => ReadShared(source.Log("cs1")).Contains("tick 3\n"), TimeSpan.FromSeconds(60)), "the guest did not tick");

        var env = new Dictionary<string, string> { ["KILN_TLS_INSECURE"] = "1", ["KILN_MIGRATE_TOKEN"] = ApiToken };
        var r = CliWithEnv(source, env, "migrate", "--live", "cs1", $"tcp://{_net.AddressB}:7443", "--copy-storage");
        Assert.True(r.ExitCode == 0, $"migrate failed: {r.Stderr}");
        Assert.Contains("MB of disk", r.Stdout);
        Assert.Matches(@"disk \d+\.\d MB sent", r.Stderr);
        Assert.True(File.Exists(Path.Combine(destinationDisks, "vm.qcow2")), "the destination VMM did not create its image");
        Assert.True(File.Exists(image), "the source's image is gone");
        string list = Cli(dest, "list").Stdout;
        Assert.True(Regex.IsMatch(list, @"cs1\s+running"), $"not running on the destination:\n{list}\n{ReadShared(dest.Log("cs1"))}");
        long lastOnSource = Ticks(ReadShared(source.Log("cs1"))).Max();
        Assert.True(WaitUntil(() => Ticks(ReadShared(dest.Log("cs1"))).DefaultIfEmpty().Max() >= lastOnSource + 20, TimeSpan.FromSeconds(60)),
            "the guest did not keep ticking on the destination");
        string after = ReadShared(dest.Log("cs1"));
        Assert.Matches(@"wrote \d+", after);
        Assert.DoesNotContain("MISMATCH", after);
        Assert.Equal(0, Cli(dest, "destroy", "cs1").ExitCode);
    }
}
