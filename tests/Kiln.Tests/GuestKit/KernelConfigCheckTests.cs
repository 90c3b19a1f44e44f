using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class KernelConfigCheckTests
{
    [Fact]
    public void ReportsDroppedAndChangedOptionsOnly()
    {
        const string fragment = "# comment\nCONFIG_SMP=y\nCONFIG_NR_CPUS=64\n# CONFIG_MODULES is not set\n# CONFIG_FTRACE is not set\nCONFIG_ACPI=y\n";
        const string final = "CONFIG_SMP=y\nCONFIG_NR_CPUS=8\n# CONFIG_MODULES is not set\n# CONFIG_ACPI is not set\n";
        Assert.Equal(["CONFIG_NR_CPUS=64 (got 8)", "CONFIG_ACPI=y (got n)"], KernelConfigCheck.Mismatches(fragment, final));
    }

    [Fact]
    public void RepositoryFragmentParses()
    {
        var options = KernelConfigCheck.Parse(KitSources.Embedded.ConfigFragment);
        Assert.Equal("y", options["CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"]);
        Assert.Equal("n", options["CONFIG_JUMP_LABEL"]);
        Assert.Equal("n", options["CONFIG_MODULES"]);
        Assert.Equal("y", options["CONFIG_SMP"]);
    }
}
