namespace Kiln.GuestTests.Support;

/// <summary>A test that boots Debian's stock kernel (linux-image-amd64) under KVM. It skips, loudly, when /dev/kvm
/// is absent or no stock kernel is installed (a vmlinuz under /boot with its modules under /lib/modules); test.sh
/// runs these tests only with KILN_LINUX_STOCK_TESTS=1, so such a skip there is a failure.</summary>
public sealed class StockKernelFactAttribute : FactAttribute
{
    public const string NoStockKernel = "SKIPPED LOUDLY: no stock Debian kernel is installed (apt-get install " +
        "linux-image-amd64 puts /boot/vmlinuz-VERSION and /lib/modules/VERSION/modules.dep in place), so the stock-kernel boot could not run";

    public StockKernelFactAttribute()
    {
        if (!File.Exists("/dev/kvm"))
            Skip = KvmFactAttribute.NoKvm;
        else if (!StockKernelInstalled())
            Skip = NoStockKernel;
    }

    private static bool StockKernelInstalled() =>
        Directory.Exists("/lib/modules") && Directory.GetDirectories("/lib/modules").Any(d =>
            File.Exists(Path.Combine(d, "modules.dep")) && File.Exists(Path.Combine("/boot", "vmlinuz-" + Path.GetFileName(d))));
}
