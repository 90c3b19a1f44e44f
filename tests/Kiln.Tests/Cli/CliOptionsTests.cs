using Kiln.Cli;

namespace Kiln.Tests.Cli;

public sealed class CliOptionsTests
{
    private sealed class S
    {
        public string? Kernel;
        public bool Flag;
    }

    private static readonly CliOptions<S> Options = new CliOptions<S>("run", "--kernel PATH")
        .Value("--kernel|-k", "PATH", "kernel", (s, v) => s.Kernel = v)
        .Flag("--flag", "a flag", s => s.Flag = true);

    [Fact]
    public void ParsesSeparateAndInlineValues()
    {
        var a = new S();
        Options.Parse(a, ["-k", "vmlinuz", "--flag"]);
        Assert.Equal(("vmlinuz", true), (a.Kernel, a.Flag));
        var b = new S();
        Options.Parse(b, ["--kernel=bz=Image"]);
        Assert.Equal("bz=Image", b.Kernel);
    }

    [Theory]
    [InlineData("--nope")]
    [InlineData("--kernel")]
    [InlineData("--flag=1")]
    public void BadArgumentsAreUsageErrors(string arg) =>
        Assert.Throws<UsageException>(() => Options.Parse(new S(), [arg]));

    [Fact]
    public void HelpListsEveryOption()
    {
        string help = Options.Help();
        Assert.Contains("--kernel, -k PATH", help);
        Assert.Contains("--flag", help);
    }
}
