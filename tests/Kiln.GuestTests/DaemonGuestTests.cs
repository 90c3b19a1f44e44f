using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>`kiln daemon` end to end: a real daemon on a temporary socket and state directory, driven through the
/// `kiln` CLI, running the multiboot test guest.</summary>
public sealed class DaemonGuestTests(ITestOutputHelper log) : IDisposable
{
    private readonly DaemonHarness _d = new(log);

    public void Dispose() => _d.Dispose();

    private static string PioXml(string name) => $"""
        <domain type='kvm'>
          <name>{name}</name>
          <memory unit='MiB'>32</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=pio count=4000000000 port=0x80</cmdline></os>
          <devices><serial type='pty'/><console type='pty'><target type='serial' port='0'/></console></devices>
        </domain>
        """;

    [KvmFact]
    public void DefineFromXmlStartConsoleSuspendResumeAndStates()
    {
        string xml = $"""
            <domain type='kvm'>
              <name>echo1</name>
              <uuid>6f1c8a2e-9f3b-4d51-8a0e-3c2b1d4e5f60</uuid>
              <memory unit='KiB'>65536</memory>
              <vcpu placement='static'>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=echo</cmdline></os>
              <devices><serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console></devices>
            </domain>
            """;
        _d.Ok("define", _d.WriteFile("echo1.xml", xml));
        Assert.Contains("shut off", _d.Ok("list", "--all"));
        Assert.DoesNotContain("echo1", _d.Ok("list"));
        _d.Ok("start", "echo1");
        Assert.Matches(@"echo1\s+running", _d.Ok("list"));
        _d.Ok("suspend", "echo1");
        Assert.Matches(@"echo1\s+paused", _d.Ok("list"));
        Assert.StartsWith("paused", _d.Ok("domstate", "echo1"));
        _d.Ok("resume", "echo1");
        Assert.Matches(@"echo1\s+running", _d.Ok("list"));
        var info = _d.Ok("dominfo", "echo1");
        Assert.Contains("6f1c8a2e-9f3b-4d51-8a0e-3c2b1d4e5f60", info);
        Assert.Contains("65536 KiB", info);
        Assert.Contains("<cmdline>test=echo</cmdline>", _d.Ok("dumpxml", "echo1"));
        // The console shows the guest's output and carries input to it; 'q' ends the guest, which ends the console.
        var console = _d.Cli(["console", "echo1", "--history"], stdin: "hi q", timeout: TimeSpan.FromSeconds(30));
        Assert.False(console.TimedOut);
        Assert.Contains("echo ready", console.Stdout);
        Assert.Contains("<68><69><20>", console.Stdout);
        Assert.Contains("echo done 3", console.Stdout);
        _d.WaitForState("echo1", "shut off");
        Assert.Contains("guest exited with status", _d.Ok("domstate", "echo1"));
        _d.Ok("undefine", "echo1");
        Assert.DoesNotContain("echo1", _d.Ok("list", "--all"));
    }

    [KvmFact]
    public void GracefulShutdownTimesOutClearlyThenDestroyStops()
    {
        _d.Ok("define", _d.WriteFile("p.xml", PioXml("pio1")));
        _d.Ok("start", "pio1");
        // The test guest ignores Ctrl-Alt-Del: shutdown must fail with a clear message after its timeout.
        var r = _d.Cli(["shutdown", "pio1", "--timeout", "1"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("did not shut down within 1 s", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Matches(@"pio1\s+running", _d.Ok("list"));
        var stats = JsonDocument.Parse(_d.Ok("domstats", "pio1", "--json")).RootElement;
        Assert.Equal(1, stats.GetProperty("vmm").GetProperty("vcpus").GetInt32());
        Assert.True(stats.GetProperty("vmm").GetProperty("exits").GetProperty("Io").GetInt64() > 0);
        _d.Ok("destroy", "pio1");
        Assert.Equal("shut off (destroyed)", _d.Ok("domstate", "pio1").Trim());
        Assert.False(File.Exists(Path.Combine(_d.StateDir, "run", "pio1.sock")));
    }

    [KvmFact]
    public void RunningDomainsSurviveADaemonRestartAndAKilledVmmIsCrashed()
    {
        foreach (var name in new[] { "keep1", "keep2" })
        {
            _d.Ok("define", _d.WriteFile(name + ".xml", PioXml(name)));
            _d.Ok("start", name);
        }
        var pids = new[] { _d.Pid("keep1"), _d.Pid("keep2") };
        _d.StopDaemon(kill: true);
        _d.StartDaemon();
        var list = _d.Ok("list");
        Assert.Matches(@"keep1\s+running", list);
        Assert.Matches(@"keep2\s+running", list);
        Assert.Equal(pids, new[] { _d.Pid("keep1"), _d.Pid("keep2") });
        // The re-attached VMMs still obey.
        _d.Ok("suspend", "keep1");
        Assert.Matches(@"keep1\s+paused", _d.Ok("list"));
        _d.Ok("resume", "keep1");
        Process.GetProcessById(pids[1]).Kill();
        _d.WaitForState("keep2", "crashed");
        Assert.Contains("crashed", _d.Ok("domstate", "keep2"));
        Assert.False(File.Exists(Path.Combine(_d.StateDir, "run", "keep2.sock")), "the dead VMM's socket was not cleaned");
        // And a VMM killed while the daemon was away is found crashed when it comes back.
        _d.StopDaemon(kill: false);
        Process.GetProcessById(pids[0]).Kill();
        Thread.Sleep(200);
        _d.StartDaemon();
        Assert.StartsWith("crashed", _d.Ok("domstate", "keep1"));
        Assert.False(File.Exists(Path.Combine(_d.StateDir, "run", "keep1.sock")));
    }

    [KvmFact]
    public async Task EventsPoweroffRebootAutostartAndDisks()
    {
        var events = Task.Run(() => _d.Cli(["event", "--timeout", "15", "--json"], timeout: TimeSpan.FromSeconds(40)));
        await Task.Delay(1500); // let the event stream connect
        _d.Ok("define", _d.WriteFile("off.json", $$$"""{"name":"off","memoryMiB":32,"os":{"kernel":"{{{TestGuest.Path}}}","cmdline":"test=poweroff"}}"""));
        _d.Ok("start", "off");
        _d.WaitForState("off", "shut off");
        Assert.Contains("ACPI", _d.Ok("domstate", "off"));
        _d.Ok("define", _d.WriteFile("rb.xml", PioXml("rb")));
        _d.Ok("start", "rb");
        _d.Ok("reboot", "rb");
        Thread.Sleep(500);
        Assert.Contains("boots=2", _d.Ok("domstats", "rb"));
        string disk = _d.WriteFile("d.raw", "");
        File.WriteAllBytes(disk, new byte[1 << 20]);
        Assert.Contains("applies at the next start", _d.Ok("attach-disk", "rb", disk, "vdb"));
        Assert.Contains("<target dev=\"vdb\"", _d.Ok("dumpxml", "rb"));
        _d.Ok("detach-disk", "rb", "vdb");
        Assert.DoesNotContain("vdb", _d.Ok("dumpxml", "rb"));
        _d.Ok("autostart", "rb");
        _d.Ok("destroy", "rb");
        _d.StopDaemon(kill: false);
        _d.StartDaemon();
        Assert.Matches(@"rb\s+running", _d.Ok("list"));
        _d.Ok("destroy", "rb");
        var lines = (await events).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).Select(e => $"{e.GetProperty("domain").GetString()}:{e.GetProperty("event").GetString()}").ToList();
        Assert.Equal(["off:defined", "off:started", "off:stopped", "rb:defined", "rb:started", "rb:rebooted", "rb:destroyed"], lines.Take(7));
    }

    [KvmFact]
    public void KillDashNineOfAVmmShowsCrashedWithTheSignal()
    {
        _d.Ok("define", _d.WriteFile("k.xml", PioXml("k9")));
        _d.Ok("start", "k9");
        Process.GetProcessById(_d.Pid("k9")).Kill();
        _d.WaitForState("k9", "crashed");
        Assert.Contains("signal 9", _d.Ok("domstate", "k9"));
        Assert.Matches(@"k9\s+crashed", _d.Ok("list", "--all"));
        // A crashed domain can be started again.
        _d.Ok("start", "k9");
        _d.Ok("destroy", "k9");
    }

    [KvmFact]
    public async Task TwoConcurrentStartsStartOnce()
    {
        _d.Ok("define", _d.WriteFile("c.xml", PioXml("once")));
        using var http = _d.Http();
        var starts = await Task.WhenAll(http.PostAsync("/v1/domains/once/start", null), http.PostAsync("/v1/domains/once/start", null));
        var codes = starts.Select(s => (int)s.StatusCode).Order().ToArray();
        Assert.Equal([200, 409], codes);
        // Every launch writes one header line to the domain's log before its VMM starts.
        var launches = File.ReadAllLines(Path.Combine(_d.StateDir, "log", "once.log")).Count(l => l.StartsWith("--- ", StringComparison.Ordinal));
        Assert.Equal(1, launches);
        int vmms = Process.GetProcesses().Count(p => CommandLine(p).Contains("vmm-standby", StringComparison.Ordinal) &&
                                                     OutputFile(p) == Path.Combine(_d.StateDir, "log", "once.log"));
        Assert.Equal(1, vmms);
        _d.Ok("destroy", "once");
    }

    private static string? OutputFile(Process p)
    {
        try
        {
            return new FileInfo($"/proc/{p.Id}/fd/1").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string CommandLine(Process p)
    {
        try
        {
            return File.ReadAllText($"/proc/{p.Id}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }

    [KvmFact]
    public async Task BadInputGetsClearErrors()
    {
        var r = _d.Cli(["dominfo", "nosuch"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: domain 'nosuch' not found", r.Stderr.Trim());
        using var http = _d.Http();
        var missing = await http.GetAsync("/v1/domains/nosuch");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("not found", JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        var bad = await http.PostAsync("/v1/domains", new StringContent("""{"name":"x","memoryMiB":"lots","os":{"kernel":"/k"}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("$.memoryMiB", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("field").GetString());
        var badXml = _d.Cli(["define", _d.WriteFile("bad.xml", "<domain><name>x</name><vcpu>many</vcpu><os><kernel>/k</kernel></os></domain>")]);
        Assert.Equal(1, badXml.ExitCode);
        Assert.Contains("vcpu", badXml.Stderr);
        _d.Ok("define", _d.WriteFile("d1.xml", PioXml("dup")));
        var dupName = _d.Cli(["define", _d.WriteFile("d2.xml", PioXml("dup"))]); // same name, new uuid
        Assert.Equal(1, dupName.ExitCode);
        Assert.Contains("already exists", dupName.Stderr);
    }

    [KvmFact]
    public void TwentyDomainsStartAtOnceAndListStaysResponsive()
    {
        const int count = 20;
        for (int i = 0; i < count; i++)
            _d.Ok("define", _d.WriteFile($"s{i}.xml", PioXml($"storm{i}")));
        using var http = _d.Http();
        var latencies = new List<double>();
        using var stop = new CancellationTokenSource();
        // Dedicated threads: the starts block while their CLI runs, and must not delay the lister's measurements
        // through this process's thread pool.
        var lister = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var one = Stopwatch.StartNew();
                using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/domains?all=true");
                using var response = http.Send(request);
                response.EnsureSuccessStatusCode();
                response.Content.ReadAsStream().CopyTo(Stream.Null);
                latencies.Add(one.Elapsed.TotalMilliseconds);
                Thread.Sleep(10);
            }
        });
        lister.Start();
        var sw = Stopwatch.StartNew();
        var results = new ProcessRunner.Result[count];
        var starters = Enumerable.Range(0, count).Select(i => new Thread(() => results[i] = _d.Cli(["start", $"storm{i}"], timeout: TimeSpan.FromMinutes(2)))).ToList();
        starters.ForEach(t => t.Start());
        starters.ForEach(t => t.Join());
        double startAll = sw.Elapsed.TotalSeconds;
        stop.Cancel();
        lister.Join();
        foreach (var r in results)
            Assert.True(r.ExitCode == 0, r.Stderr);
        var list = _d.Ok("list");
        for (int i = 0; i < count; i++)
            Assert.Matches($@"storm{i}\s+running", list);
        var sorted = latencies.Order().ToArray();
        double p50 = sorted[sorted.Length / 2], p99 = sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(sorted.Length * 0.99) - 1)];
        string report = $"20-domain storm: all running in {startAll:F2} s; list p50 {p50:F1} ms, p99 {p99:F1} ms, max {sorted[^1]:F1} ms over {sorted.Length} calls; daemon RSS {_d.DaemonRssKiB()} KiB";
        log.WriteLine(report);
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "kiln-daemon-storm.txt"), report + "\n");
        // 20 guests spinning on port I/O share two cores with the daemon here: the bound is a sanity check; the numbers are reported.
        Assert.True(p99 < 5000, report);
        for (int i = 0; i < count; i++)
            _d.Ok("destroy", $"storm{i}");
    }

    [KvmFact]
    public void ShutdownPressesTheAcpiPowerButtonOfAGuestThatListens()
    {
        _d.Ok("define", _d.WriteFile("pb.json", $$$"""{"name":"pb","memoryMiB":32,"os":{"kernel":"{{{TestGuest.Path}}}","cmdline":"test=powerbutton"}}"""));
        _d.Ok("start", "pb");
        _d.WaitForLog("pb", "powerbutton: armed");
        var sw = Stopwatch.StartNew();
        _d.Ok("shutdown", "pb", "--timeout", "30");
        // The Ctrl-Alt-Del fallback would only come after a 5 s grace period (and this guest ignores it).
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"shutdown took {sw.Elapsed.TotalSeconds:F1} s");
        Assert.Contains("ACPI S5", _d.Ok("domstate", "pb"));
        Assert.Contains("powerbutton: pressed; powering off", _d.ConsoleLog("pb"));
    }

    [KvmFact]
    public void DomstatsReportsBlockCountersAndVcpuTimesAndAttachDiskWhileShutOffAppliesAtStart()
    {
        string disk = _d.WriteFile("blk.raw", "");
        File.WriteAllBytes(disk, new byte[1 << 20]);
        _d.Ok("define", _d.WriteFile("blk.xml", $"""
            <domain type='kvm'>
              <name>blk</name>
              <memory unit='MiB'>32</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel>
                <cmdline>test=virtio-blk transport=pci nread=8 write=1 sector=8 count=4 flush=1 hold=1</cmdline></os>
            </domain>
            """));
        // Shut off: the change is simply made (no "next start" message), and the start gives the guest the disk.
        Assert.Equal("Disk vda attached", _d.Ok("attach-disk", "blk", disk, "vda").Trim());
        _d.Ok("start", "blk");
        _d.WaitForLog("blk", "virtio-blk: holding");
        Assert.Contains("virtio-blk: device status 0xf; ok", _d.ConsoleLog("blk"));
        var vmm = JsonDocument.Parse(_d.Ok("domstats", "blk", "--json")).RootElement.GetProperty("vmm");
        var d = vmm.GetProperty("disks")[0];
        Assert.Equal("vda", d.GetProperty("name").GetString());
        Assert.Equal(disk, d.GetProperty("path").GetString());
        Assert.True(d.GetProperty("readRequests").GetInt64() >= 1);
        Assert.True(d.GetProperty("readBytes").GetInt64() >= 8 * 512);
        Assert.True(d.GetProperty("writeRequests").GetInt64() >= 1);
        Assert.True(d.GetProperty("writeBytes").GetInt64() >= 4 * 512);
        Assert.Equal(1, d.GetProperty("flushes").GetInt64());
        Assert.Equal(0, d.GetProperty("errors").GetInt64());
        Assert.Equal(0, vmm.GetProperty("nics").GetArrayLength());
        var vcpu = Assert.Single(vmm.GetProperty("vcpuTimes").EnumerateArray());
        Assert.Equal(0, vcpu.GetProperty("id").GetInt32());
        Assert.True(vcpu.GetProperty("cpuTimeSeconds").GetDouble() >= 0);
        var text = _d.Ok("domstats", "blk");
        Assert.Contains("block.count=1", text);
        Assert.Contains("block.0.name=vda", text);
        Assert.Matches(@"block\.0\.wr\.reqs=[1-9]", text);
        Assert.Contains("block.0.fl.reqs=1", text);
        Assert.Contains("vcpu.0.time=", text);
        Assert.Contains("net.count=0", text);
        // Running: the change is persistent and the message says when it applies.
        string second = _d.WriteFile("blk2.raw", "");
        File.WriteAllBytes(second, new byte[1 << 20]);
        Assert.Contains("applies at the next start", _d.Ok("attach-disk", "blk", second, "vdb"));
        Assert.Single(JsonDocument.Parse(_d.Ok("domstats", "blk", "--json")).RootElement.GetProperty("vmm").GetProperty("disks").EnumerateArray());
        Assert.Contains("applies at the next start", _d.Ok("detach-disk", "blk", "vdb"));
        var bad = _d.Cli(["attach-disk", "blk", second, "vda"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("already has a disk at vda", bad.Stderr);
        _d.Ok("destroy", "blk");
        Assert.Equal("Disk vda detached", _d.Ok("detach-disk", "blk", "vda").Trim());
        Assert.DoesNotContain("<disk", _d.Ok("dumpxml", "blk"));
    }

    [KvmFact]
    public void CliOverTcpWithTlsAndTokenDrivesADomainEndToEnd()
    {
        var (uri, ca, token) = StartTlsDaemon();
        ProcessRunner.Result Tcp(string[] args, string? stdin = null, string? withToken = null, bool trustCa = true)
        {
            var env = new List<string>();
            if (withToken is not null)
                env.Add("KILN_TOKEN=" + withToken);
            if (trustCa)
                env.Add("KILN_TLS_CA=" + ca);
            var r = ProcessRunner.Run("env", [.. env, "dotnet", Support.Kiln.CliDll, .. args, "-c", uri], TimeSpan.FromSeconds(60), stdin);
            log.WriteLine($"$ kiln {string.Join(' ', args)} -c {uri} -> {r.ExitCode}\n{r.Stdout}{r.Stderr}");
            return r;
        }
        var anonymous = Tcp(["list", "--all"]);
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Equal("error: unauthorized: a valid bearer token is required", anonymous.Stderr.Trim());
        Assert.Equal(1, Tcp(["list"], withToken: "wrong-token-0123456789").ExitCode);
        var untrusted = Tcp(["list"], withToken: token, trustCa: false);
        Assert.Equal(1, untrusted.ExitCode);
        Assert.Single(untrusted.Stderr.Trim().Split('\n'));

        string xml = _d.WriteFile("tcp.xml", $"""
            <domain type='kvm'>
              <name>remote1</name>
              <memory unit='MiB'>32</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64'>hvm</type><kernel>{TestGuest.Path}</kernel><cmdline>test=echo</cmdline></os>
            </domain>
            """);
        Assert.Equal(0, Tcp(["define", xml], withToken: token).ExitCode);
        Assert.Equal(0, Tcp(["start", "remote1"], withToken: token).ExitCode);
        var list = Tcp(["list"], withToken: token);
        Assert.Matches(@"remote1\s+running", list.Stdout);
        Assert.Equal(0, Tcp(["domstats", "remote1"], withToken: token).ExitCode);
        // The console is a WebSocket over the same TLS connection, authorized by the same token.
        var console = Tcp(["console", "remote1", "--history"], stdin: "ok q", withToken: token);
        Assert.Equal(0, console.ExitCode);
        Assert.Contains("echo ready", console.Stdout);
        Assert.Contains("echo done", console.Stdout);
        _d.WaitForState("remote1", "shut off");
        Assert.StartsWith("shut off", Tcp(["domstate", "remote1"], withToken: token).Stdout);
    }

    /// <summary>Restarts the harness's daemon with a TCP listener: a self-signed certificate for 127.0.0.1 and a
    /// token file. Returns the tcp:// URI, the certificate's PEM path (the clients' CA) and the token.</summary>
    private (string Uri, string Ca, string Token) StartTlsDaemon()
    {
        string dir = _d.Dir;
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            File.WriteAllText(Path.Combine(dir, "cert.pem"), cert.ExportCertificatePem());
            File.WriteAllText(Path.Combine(dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        }
        const string token = "s3cret-token-for-tests-0123456789";
        File.WriteAllText(Path.Combine(dir, "token"), token + "\n");
        int port = FreePort();
        _d.StopDaemon(kill: false);
        _d.StartDaemon("--tcp", $"127.0.0.1:{port}", "--tls-cert", Path.Combine(dir, "cert.pem"), "--tls-key", Path.Combine(dir, "key.pem"),
            "--token-file", Path.Combine(dir, "token"));
        return ($"tcp://127.0.0.1:{port}", Path.Combine(dir, "cert.pem"), token);
    }

    [KvmFact]
    public async Task TcpListenerRefusesUnauthenticatedRequests()
    {
        var (uri, _, token) = StartTlsDaemon();
        int port = new Uri(uri).Port;
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true };
        using var http = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}/") };
        var anonymous = await http.GetAsync("/v1/domains");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Contains("unauthorized", await anonymous.Content.ReadAsStringAsync());
        using (var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/domains"))
        {
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "guess");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        }
        using (var right = new HttpRequestMessage(HttpMethod.Get, "/v1/domains"))
        {
            right.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(right)).StatusCode);
        }
        // Plain HTTP on the TLS port is not served either.
        using var plain = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(5) };
        await Assert.ThrowsAnyAsync<Exception>(async () => (await plain.GetAsync("/v1/domains")).EnsureSuccessStatusCode());
        // The Unix socket needs no token (its mode is 0600).
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_d.Socket));
        _d.Ok("list", "--all");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>A `kiln daemon` on a temporary socket and state directory, and the CLI pointed at it. Disposing it
/// destroys every VMM it started and stops the daemon.</summary>
public sealed class DaemonHarness : IDisposable
{
    private readonly ITestOutputHelper _log;
    private Process? _daemon;

    public DaemonHarness(ITestOutputHelper log)
    {
        _log = log;
        Dir = Path.Combine(Path.GetTempPath(), "kd-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
        StartDaemon();
    }

    public string Dir { get; }
    public string Socket => Path.Combine(Dir, "kiln.sock");
    public string StateDir => Path.Combine(Dir, "state");
    public string Uri => "unix://" + Socket;

    public void StartDaemon(params string[] extra)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Support.Kiln.CliDll, "daemon", "--socket", Socket, "--state-dir", StateDir }.Concat(extra))
            psi.ArgumentList.Add(a);
        _daemon = Process.Start(psi)!;
        _daemon.OutputDataReceived += (_, e) => Log(e.Data);
        _daemon.ErrorDataReceived += (_, e) => Log(e.Data);
        _daemon.BeginOutputReadLine();
        _daemon.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_daemon.HasExited)
                throw new InvalidOperationException($"the daemon exited with {_daemon.ExitCode}");
            if (File.Exists(Socket) && Cli(["list"], check: false).ExitCode == 0)
                return;
            Thread.Sleep(50);
        }
        throw new TimeoutException("the daemon did not come up");
    }

    private void Log(string? line)
    {
        if (line is null)
            return;
        try
        {
            _log.WriteLine("daemon: " + line);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public void StopDaemon(bool kill)
    {
        if (_daemon is null)
            return;
        if (kill)
            _daemon.Kill();
        else
            Process.Start("kill", ["-TERM", _daemon.Id.ToString()])!.WaitForExit();
        _daemon.WaitForExit(10_000);
        _daemon.Dispose();
        _daemon = null;
    }

    public string WriteFile(string name, string text)
    {
        string path = Path.Combine(Dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    public ProcessRunner.Result Cli(string[] args, string? stdin = null, TimeSpan? timeout = null, bool check = false)
    {
        var r = Support.Kiln.Run([.. args, "-c", Uri], timeout ?? TimeSpan.FromSeconds(60), stdin);
        Log($"$ kiln {string.Join(' ', args)} -> {r.ExitCode} ({r.Elapsed.TotalMilliseconds:F0} ms)\n{r.Stdout}{r.Stderr}");
        return r;
    }

    /// <summary>Runs a verb that must succeed and returns its stdout.</summary>
    public string Ok(params string[] args)
    {
        var r = Cli(args);
        Assert.True(r.ExitCode == 0, $"kiln {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}");
        return r.Stdout;
    }

    public int Pid(string name) =>
        JsonDocument.Parse(Ok("domstate", name, "--json")).RootElement.GetProperty("pid").GetInt32();

    public void WaitForState(string name, string state)
    {
        var sw = Stopwatch.StartNew();
        string last = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            last = Ok("domstate", name);
            if (last.StartsWith(state, StringComparison.Ordinal))
                return;
            Thread.Sleep(100);
        }
        Assert.Fail($"domain {name} did not reach '{state}' (last: {last.Trim()})");
    }

    /// <summary>The domain's console log (the VMM's stdout) so far.</summary>
    public string ConsoleLog(string name)
    {
        string path = Path.Combine(StateDir, "log", name + ".log");
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(f).ReadToEnd();
    }

    public void WaitForLog(string name, string text, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < (timeout ?? TimeSpan.FromSeconds(20)))
        {
            if (File.Exists(Path.Combine(StateDir, "log", name + ".log")) && ConsoleLog(name).Contains(text, StringComparison.Ordinal))
                return;
            Thread.Sleep(50);
        }
        Assert.Fail($"'{text}' did not appear in {name}'s console log:\n{ConsoleLog(name)}");
    }

    public HttpClient Http()
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancel) =>
            {
                var s = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(Socket), cancel);
                return new NetworkStream(s, ownsSocket: true);
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri("http://localhost/") };
    }

    public long DaemonRssKiB()
    {
        if (_daemon is null)
            return 0;
        foreach (var line in File.ReadLines($"/proc/{_daemon.Id}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return 0;
    }

    public void Dispose()
    {
        // Every VMM this harness's daemon started, found by its control socket under our state directory.
        foreach (var p in Process.GetProcesses())
        {
            try
            {
                if (p.Id != _daemon?.Id && File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(StateDir, StringComparison.Ordinal))
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
        StopDaemon(kill: false);
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
