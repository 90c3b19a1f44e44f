using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class KitCommandLineTests
{
    /// <summary>Both kits boot with `noxsave` on PVM hosts, whose guest ring 3 still sees AVX-512: glibc must be told
    /// to leave every AVX path, or processes share vector registers the guest kernel does not switch.</summary>
    [Theory]
    [InlineData(GuestKitOptions.RecommendedCmdline)]
    [InlineData(GuestKitOptions.StockRecommendedCmdline)]
    public void NoxsaveKitsKeepGlibcOffAvx(string cmdline)
    {
        var args = cmdline.Split(' ');
        Assert.Contains("noxsave", args);
        string tunables = args.Single(a => a.StartsWith("GLIBC_TUNABLES=", StringComparison.Ordinal));
        var off = tunables["GLIBC_TUNABLES=glibc.cpu.hwcaps=".Length..].Split(',');
        foreach (var feature in new[] { "AVX512F", "AVX512VL", "AVX512BW", "AVX2", "AVX", "AVX_Fast_Unaligned_Load" })
            Assert.Contains("-" + feature, off);
    }
}
