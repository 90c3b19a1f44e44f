using Kiln.Vmm.Cpu;

namespace Kiln.Tests.Vmm;

public sealed class VcpuPinningTests
{
    [Fact]
    public void OnPvmEachVcpuGetsItsOwnAllowedHostCpu()
    {
        int[] allowed = [2, 5, 7];
        Assert.Equal(2, VcpuPinning.HostCpuFor(0, 3, allowed, pvmHost: true));
        Assert.Equal(5, VcpuPinning.HostCpuFor(1, 3, allowed, pvmHost: true));
        Assert.Equal(7, VcpuPinning.HostCpuFor(2, 3, allowed, pvmHost: true));
    }

    [Fact]
    public void NoPinningOffPvmForOneVcpuOrWhenHostCpusAreTooFew()
    {
        int[] two = [0, 1];
        Assert.Null(VcpuPinning.HostCpuFor(0, 2, two, pvmHost: false));
        Assert.Null(VcpuPinning.HostCpuFor(0, 1, two, pvmHost: true));
        Assert.Null(VcpuPinning.HostCpuFor(0, 3, two, pvmHost: true));
        Assert.Null(VcpuPinning.HostCpuFor(2, 2, two, pvmHost: true));
        Assert.Null(VcpuPinning.HostCpuFor(-1, 2, two, pvmHost: true));
    }
}
