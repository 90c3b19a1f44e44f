using Kiln.Cli;

namespace Kiln.Tests.Cli;

public sealed class SizeParserTests
{
    [Theory]
    [InlineData("512", 512UL << 20)]
    [InlineData("512M", 512UL << 20)]
    [InlineData("512MiB", 512UL << 20)]
    [InlineData("2G", 2UL << 30)]
    [InlineData("2g", 2UL << 30)]
    [InlineData("65536K", 64UL << 20)]
    [InlineData("1T", 1UL << 40)]
    [InlineData("1MB", 1UL << 20)]
    public void ParsesQemuStyleSizes(string text, ulong bytes) => Assert.Equal(bytes, SizeParser.Parse(text, "--memory"));

    [Theory]
    [InlineData("")]
    [InlineData("lots")]
    [InlineData("0")]
    [InlineData("-1G")]
    [InlineData("12Q")]
    [InlineData("99999999999999999999")]
    [InlineData("99999999T")]
    public void RejectsWithAUsageError(string text)
    {
        var e = Assert.Throws<UsageException>(() => SizeParser.Parse(text, "--memory"));
        Assert.Contains("--memory", e.Message);
    }

    [Theory]
    [InlineData("0xf4", 0xF4UL)]
    [InlineData("244", 244UL)]
    [InlineData("0XFFFC", 0xFFFCUL)]
    public void ParsesPortNumbers(string text, ulong value) => Assert.Equal(value, SizeParser.ParseNumber(text, "--debug-exit", 0xFFFC));

    [Theory]
    [InlineData("0x10000")]
    [InlineData("port")]
    [InlineData("0x")]
    public void RejectsBadPortNumbers(string text) =>
        Assert.Throws<UsageException>(() => SizeParser.ParseNumber(text, "--debug-exit", 0xFFFC));
}
