using Kiln.Vmm.Migration;

namespace Kiln.Tests.Vmm.Migration;

public sealed class MigrationEndpointTests
{
    [Theory]
    [InlineData("tcp:10.0.0.2:4444", "10.0.0.2", 4444)]
    [InlineData("tcp://host.example:1", "host.example", 1)]
    [InlineData("tcp:[fe80::1]:5000", "fe80::1", 5000)]
    [InlineData("tcp:0.0.0.0:0", "0.0.0.0", 0)]
    public void ParsesTcpAddresses(string text, string host, int port)
    {
        var e = MigrationEndpoint.Parse(text);
        Assert.Equal(host, e.Host);
        Assert.Equal(port, e.Port);
    }

    [Theory]
    [InlineData("10.0.0.2:4444")]
    [InlineData("tcp:10.0.0.2")]
    [InlineData("tcp::4444")]
    [InlineData("tcp:host:70000")]
    [InlineData("tcp:host:-1")]
    [InlineData("udp:host:1")]
    public void RefusesOtherText(string text) => Assert.Throws<FormatException>(() => MigrationEndpoint.Parse(text));
}
