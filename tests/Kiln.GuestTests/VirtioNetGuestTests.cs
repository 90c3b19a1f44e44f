using System.Globalization;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>virtio-net end to end: the test guest ARPs and pings 10.0.2.1 through a tap that lives in a network
/// namespace the test creates (so no traffic leaves it). Needs `kiln run --net tap=NAME` and root.</summary>
public sealed class VirtioNetGuestTests(ITestOutputHelper log)
{
    private static ProcessRunner.Result Ip(params string[] args) => ProcessRunner.Run("ip", args, TimeSpan.FromSeconds(10));

    private ProcessRunner.Result BootInNamespace(string transport)
    {
        string ns = "ktg" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + transport[0];
        Assert.Equal(0, Ip("netns", "add", ns).ExitCode);
        try
        {
            Assert.Equal(0, Ip("-n", ns, "tuntap", "add", "dev", "kt0", "mode", "tap").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "addr", "add", "10.0.2.1/24", "dev", "kt0").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "link", "set", "kt0", "up").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "link", "set", "lo", "up").ExitCode);
            var r = ProcessRunner.Run("ip",
                ["netns", "exec", ns, "dotnet", Support.Kiln.CliDll, "run", "--kernel", TestGuest.Path, "--memory", "64M",
                 "--net", "tap=kt0", "--transport", transport,
                 "--cmdline", $"test=virtio-net transport={transport} ip=10.0.2.15 peer=10.0.2.1 count=5"],
                TimeSpan.FromSeconds(60));
            log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalMilliseconds:F0} ms\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
            Assert.False(r.TimedOut, "kiln did not finish in time");
            return r;
        }
        finally
        {
            Ip("netns", "del", ns);
        }
    }

    [KvmTheory]
    [InlineData("pci")]
    [InlineData("mmio")]
    public void GuestArpsAndPingsTheHost(string transport)
    {
        var r = BootInNamespace(transport);
        Assert.Matches("net: arp reply from [0-9a-f]{2}(:[0-9a-f]{2}){5}", r.Stdout);
        Assert.Contains("net: 5/5 echo replies", r.Stdout);
        Assert.Equal(Support.Kiln.DebugExitStatus(0), r.ExitCode);
    }
}
