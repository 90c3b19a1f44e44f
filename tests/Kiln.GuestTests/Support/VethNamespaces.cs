using System.Globalization;

namespace Kiln.GuestTests.Support;

/// <summary>Two network namespaces joined by a veth pair (A = 10.201.N.1, B = 10.201.N.2), for migrations between
/// "hosts". Disposing deletes both namespaces, which removes the veth pair with them.</summary>
public sealed class VethNamespaces : IDisposable
{
    private static int _counter;

    public VethNamespaces()
    {
        int n = (Environment.ProcessId * 7 + Interlocked.Increment(ref _counter)) % 250 + 1;
        string id = n.ToString(CultureInfo.InvariantCulture);
        A = "kmiga" + id;
        B = "kmigb" + id;
        AddressA = $"10.201.{id}.1";
        AddressB = $"10.201.{id}.2";
        Ip("netns", "del", A);
        Ip("netns", "del", B);
        Check(Ip("netns", "add", A));
        Check(Ip("netns", "add", B));
        Check(Ip("link", "add", LinkA, "netns", A, "type", "veth", "peer", "name", LinkB, "netns", B));
        Check(Ip("-n", A, "addr", "add", AddressA + "/24", "dev", LinkA));
        Check(Ip("-n", B, "addr", "add", AddressB + "/24", "dev", LinkB));
        foreach (var (ns, link) in new[] { (A, LinkA), (B, LinkB) })
        {
            Check(Ip("-n", ns, "link", "set", link, "up"));
            Check(Ip("-n", ns, "link", "set", "lo", "up"));
        }
    }

    public string A { get; }
    public string B { get; }
    public string AddressA { get; }
    public string AddressB { get; }
    public const string LinkA = "kmig0";
    public const string LinkB = "kmig1";

    /// <summary>Cuts the link without a reset: packets simply stop (as when a cable is pulled).</summary>
    public void CutLink() => Check(Ip("-n", A, "link", "set", LinkA, "down"));

    public static ProcessRunner.Result Ip(params string[] args) => ProcessRunner.Run("ip", args, TimeSpan.FromSeconds(10));

    private static void Check(ProcessRunner.Result r)
    {
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"ip failed: {r.Stderr}");
    }

    public void Dispose()
    {
        Ip("netns", "del", A);
        Ip("netns", "del", B);
    }
}
