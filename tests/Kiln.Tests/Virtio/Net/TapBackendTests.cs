using System.Buffers.Binary;
using System.Diagnostics;
using Kiln.Memory;
using Kiln.Virtio;
using Kiln.Virtio.Mmio;
using Kiln.Virtio.Net;

namespace Kiln.Tests.Virtio.Net;

/// <summary>The TAP backend on real interfaces. Taps are created in the host namespace with unique names
/// (kilnt&lt;pid&gt;...) and vanish when their descriptor closes; traffic only flows in a namespace the test creates.</summary>
public sealed class TapBackendTests
{
    private static readonly string Suffix = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static (int Code, string Output) Ip(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [RootFact]
    public void OpensAnUpTapWithOffloadsAndRemovesItOnDispose()
    {
        string name = "kilnt" + Suffix;
        using (var tap = TapBackend.Open(name))
        {
            Assert.Equal(name, tap.Name);
            uint flags = Convert.ToUInt32(File.ReadAllText($"/sys/class/net/{name}/flags").Trim(), 16);
            Assert.Equal(1u, flags & 1); // IFF_UP
            Assert.True(tap.SupportedOffloads.HasFlag(NetOffloads.Csum));
            tap.SetOffloads(tap.SupportedOffloads);
            tap.SetOffloads(NetOffloads.None);
            // Non-blocking: the kernel may already have queued its own IPv6 router solicitations or MLD reports on
            // the fresh interface, so drain those; once they are read, a receive returns 0 instead of waiting.
            int frames = 0;
            while (tap.Receive(new byte[2048]) > 0)
                Assert.True(++frames < 100, "a new tap kept delivering frames");
        }
        AssertTapGone(name);
    }

    /// <summary>Closing a tap's last descriptor unregisters the device, which the kernel may finish a moment later
    /// (seen once in CI on a loaded host): allow it a few seconds.</summary>
    private static void AssertTapGone(string name)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (Directory.Exists($"/sys/class/net/{name}") && waited.Elapsed < TimeSpan.FromSeconds(5))
            Thread.Sleep(20);
        Assert.False(Directory.Exists($"/sys/class/net/{name}"), $"tap {name} still exists");
    }

    [RootFact]
    public void MissingBridgeIsOneLineNamingBoth()
    {
        string name = "kiltb" + Suffix;
        var e = Assert.Throws<NetBackendException>(() => TapBackend.Open(name, "nobr" + Suffix));
        Assert.Contains(name, e.Message);
        Assert.Contains("nobr" + Suffix, e.Message);
        Assert.DoesNotContain("\n", e.Message);
        AssertTapGone(name);
    }

    [Fact]
    public void InvalidNameIsRefusedBeforeAnySystemCall()
    {
        var e = Assert.Throws<NetBackendException>(() => TapBackend.Open("no/slashes"));
        Assert.Contains("no/slashes", e.Message);
    }

    /// <summary>The device, its RX poller and worker against a real kernel: the tap is moved into a fresh namespace
    /// holding 10.0.2.1/24, the test plays the guest driver, sends an ARP request and gets the kernel's reply.</summary>
    [RootFact]
    public void ArpThroughARealTapInANamespace()
    {
        string name = "kilnx" + Suffix, ns = "kiltest" + Suffix;
        Assert.Equal(0, Ip("netns", "add", ns).Code);
        try
        {
            var memory = VirtioTest.CreateMemory();
            var device = new VirtioNet(memory, TapBackend.Open(name), new MacAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x55));
            using var transport = new VirtioMmioTransport(device, new FakeVirtioInterrupts(), 0xD000_0000, 5);
            Assert.Equal(0, Ip("link", "set", name, "netns", ns).Code);
            Assert.Equal(0, Ip("-n", ns, "addr", "add", "10.0.2.1/24", "dev", name).Code);
            Assert.Equal(0, Ip("-n", ns, "link", "set", name, "up").Code);
            device.StartWorker();
            var q = VirtioTest.Setup(transport, memory, VirtioFeatures.Version1 | NetFeatures.MrgRxbuf);
            for (int i = 0; i < 8; i++)
            {
                q[0].SetDescriptor(i, NetRig.RxAddress(i, 2048), 2048, 2);
                q[0].Publish((ushort)i);
            }
            transport.Notify(0);

            byte[] arp = ArpRequest();
            memory.Write(new GuestAddress(0x80000), arp);
            q[1].SetDescriptor(0, 0x80000, (uint)arp.Length);
            q[1].Publish(0);
            transport.Notify(1);

            var deadline = Stopwatch.StartNew();
            bool replied = false;
            for (int seen = 0; !replied && deadline.Elapsed < TimeSpan.FromSeconds(10);)
            {
                if (seen == q[0].UsedIdx || seen >= 8)
                {
                    Thread.Sleep(10);
                    continue;
                }
                var (id, length) = q[0].UsedElement(seen++);
                var f = new byte[length];
                memory.Read(new GuestAddress(NetRig.RxAddress((int)id, 2048)), f);
                replied = length >= 12 + 42 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12 + 12)) == 0x0806
                          && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12 + 14 + 6)) == 2
                          && f.AsSpan(12 + 14 + 14, 4).SequenceEqual(new byte[] { 10, 0, 2, 1 });
            }
            Assert.True(replied, $"no ARP reply; rx {device.Metrics.RxPackets} tx {device.Metrics.TxPackets} dropped {device.Metrics.TxDropped}");
            Assert.Equal(1, device.Metrics.TxPackets);
            device.Dispose();
        }
        finally
        {
            Ip("netns", "del", ns);
        }
    }

    private static byte[] ArpRequest()
    {
        var f = new byte[12 + 60];
        var e = f.AsSpan(12);
        e[..6].Fill(0xff);
        new byte[] { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }.CopyTo(e[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(e[12..], 0x0806);
        var a = e[14..];
        BinaryPrimitives.WriteUInt16BigEndian(a, 1);
        BinaryPrimitives.WriteUInt16BigEndian(a[2..], 0x0800);
        a[4] = 6;
        a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a[6..], 1);
        new byte[] { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }.CopyTo(a[8..]);
        new byte[] { 10, 0, 2, 15 }.CopyTo(a[14..]);
        new byte[] { 10, 0, 2, 1 }.CopyTo(a[24..]);
        return f;
    }
}
