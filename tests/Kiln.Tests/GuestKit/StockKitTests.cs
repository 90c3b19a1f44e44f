using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class StockKitTests
{
    private static string[] ClearedCpuFeatures(string cmdline) =>
        cmdline.Split(' ').Single(a => a.StartsWith("clearcpuid=", StringComparison.Ordinal))["clearcpuid=".Length..].Split(',');

    /// <summary>Kiln completes the stock kernel's system calls at the CLAC of its #PF entry (PVM hosts); clearing
    /// SMAP would turn that CLAC into a NOP and every system call into a dead process.</summary>
    [Fact]
    public void StockCommandLineKeepsSmapAndClearsRing0Simd()
    {
        var cleared = ClearedCpuFeatures(GuestKitOptions.StockRecommendedCmdline);
        Assert.DoesNotContain("smap", cleared);
        Assert.Contains("ssse3", cleared);
        Assert.Contains("xsave", cleared);
        Assert.Contains("noxsave", GuestKitOptions.StockRecommendedCmdline.Split(' '));
    }

    [Fact]
    public void StockInitListsDevicesAfterTheModulesAndBeforeTheMarker()
    {
        string init = InitScript.Stock(["/lib/modules/virtio_blk.ko"]);
        int load = init.IndexOf("insmod /lib/modules/virtio_blk.ko", StringComparison.Ordinal);
        int devices = init.IndexOf("echo \"" + InitScript.DevicesMarker, StringComparison.Ordinal);
        int marker = init.IndexOf("echo \"" + InitScript.ReadyMarker, StringComparison.Ordinal);
        Assert.True(load > 0 && devices > load && marker > devices, init);
        Assert.DoesNotContain(InitScript.DevicesMarker, InitScript.Busybox);
    }

    [Fact]
    public void Ext4CrcDependencyIsLoadedBeforeExt4()
    {
        var wanted = StockKitBuilder.WantedModules.ToList();
        int crc = wanted.IndexOf("crc32c_generic");
        Assert.InRange(crc, 0, wanted.IndexOf("ext4") - 1);
    }
}
