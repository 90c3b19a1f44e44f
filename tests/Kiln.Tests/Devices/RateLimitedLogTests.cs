using Kiln.Devices;

namespace Kiln.Tests.Devices;

public sealed class RateLimitedLogTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualTime : TimeProvider
    {
        public long Now { get; set; }
        public override long TimestampFrequency => 1000;
        public override long GetTimestamp() => Now;
    }

    [Fact]
    public void WritesABurstPerIntervalAndSaysHowManyItLeftOut()
    {
        var time = new ManualTime();
        var lines = new List<string>();
        var log = new RateLimitedLog(burst: 3, interval: TimeSpan.FromSeconds(5), time: time, sink: lines.Add);
        for (int i = 0; i < 10; i++)
            log.Write($"fault {i}");
        Assert.Equal(["fault 0", "fault 1", "fault 2"], lines);
        Assert.Equal(7, log.Suppressed);

        time.Now += 4999; // still the same interval
        log.Write("fault 10");
        Assert.Equal(3, lines.Count);

        time.Now += 1;
        log.Write("fault 11");
        Assert.Equal("fault 11 (8 similar lines left out)", lines[^1]);
        log.Write("fault 12");
        Assert.Equal("fault 12", lines[^1]); // the count is said once
        Assert.Equal(8, log.Suppressed);
    }

    [Fact]
    public void ASinkThatThrowsIsNotTheCallersProblem()
    {
        var log = new RateLimitedLog(sink: _ => throw new IOException("stderr is gone"));
        log.Write("a guest fault");
    }
}
