using System.Text;
using Kiln.Cli;

namespace Kiln.Tests.Cli;

public sealed class UnixHttpExchangeTests
{
    private static UnixHttpExchange.Response Parse(string raw) => UnixHttpExchange.Parse(Encoding.UTF8.GetBytes(raw));

    [Fact]
    public void ContentLengthBody()
    {
        var r = Parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]");
        Assert.Equal(200, r.Status);
        Assert.Equal("OK", r.Reason);
        Assert.Equal("[]", r.Body);
    }

    [Fact]
    public void ChunkedBodyIsJoined()
    {
        var r = Parse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n8;ext=1\r\nor\":\"x\"}\r\n0\r\n\r\n");
        Assert.Equal(404, r.Status);
        Assert.Equal("{\"error\":\"x\"}", r.Body);
    }

    [Fact]
    public void BodyUntilTheEndWithoutLength()
    {
        Assert.Equal("héllo", Parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhéllo").Body);
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("SMTP 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 abc OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")]
    public void MalformedResponsesAreOneClearError(string raw)
    {
        var e = Assert.Throws<DaemonClientException>(() => Parse(raw));
        Assert.StartsWith("the daemon sent", e.Message);
    }
}
