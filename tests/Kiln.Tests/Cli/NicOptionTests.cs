using Kiln.Cli;
using Kiln.Contracts.Spec;

namespace Kiln.Tests.Cli;

/// <summary>`--net` arguments: the CLI's syntax, parsed in the CLI (the virtio-net device knows nothing of it).</summary>
public sealed class NicOptionTests
{
    [Fact]
    public void ParsesTapMacAndBridge()
    {
        var o = NicOptionParser.Parse("tap=kt0,mac=52:54:00:AB:cd:01,bridge=br0");
        Assert.Equal(("kt0", "br0"), (o.Tap, o.Bridge));
        Assert.Equal("52:54:00:ab:cd:01", o.Mac?.ToString());
        Assert.Equal(new NicSpec { Tap = "tap1" }, NicOptionParser.Parse("tap=tap1"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("mac=52:54:00:00:00:01")]
    [InlineData("tap=")]
    [InlineData("tap=a,tap=b")]
    [InlineData("tap=a,color=red")]
    [InlineData("tap=waytoolonginterfacename")]
    [InlineData("tap=a/b")]
    [InlineData("tap=a,mac=01:00:5e:00:00:01")]
    [InlineData("tap=a,mac=52:54:00:00:01")]
    [InlineData("tap=a,mac=52:54:00:00:01:zz")]
    [InlineData("tap=a,bridge=b r")]
    public void RejectsMalformedArguments(string text) =>
        Assert.Throws<FormatException>(() => NicOptionParser.Parse(text));
}
