using Kiln.Kvm;
using Kiln.Vmm.Cpu;

namespace Kiln.Tests.Vmm;

public sealed class CpuidBuilderTests
{
    // A small "supported" table as KVM would report it on an AMD host with leaf 0xB.
    private static readonly KvmCpuidEntry2[] Supported =
    [
        new() { Function = 0x0, Eax = 0x10, Ebx = 0x68747541, Ecx = 0x444D4163, Edx = 0x69746E65 },
        new() { Function = 0x1, Eax = 0x00A00F11, Ebx = 0x00080800 | (7u << 24) | (64u << 16), Ecx = 0x7ED8320B, Edx = 0x178BFBFF },
        new() { Function = 0x4, Index = 0, Flags = 1, Eax = 0x121 | (63u << 26), Ebx = 0x1C0003F, Ecx = 0x3F },
        new() { Function = 0xB, Index = 0, Flags = 1, Eax = 1, Ebx = 2, Ecx = 0x100, Edx = 9 },
        new() { Function = 0xB, Index = 1, Flags = 1, Eax = 7, Ebx = 128, Ecx = 0x201, Edx = 9 },
        new() { Function = 0x4000_0000, Eax = 0x4000_0001, Ebx = 0x4B4D564B, Ecx = 0x564B4D56, Edx = 0x4D },
        new() { Function = 0x4000_0001, Eax = 0x01007AFB },
        new() { Function = 0x8000_0000, Eax = 0x8000_0021 },
        new() { Function = 0x8000_0001, Ecx = 0x75C237FF, Edx = 0x2FD3FBFF },
        new() { Function = 0x8000_0008, Eax = 0x3030, Ecx = 0x703F },
    ];

    private static KvmCpuidEntry2 Leaf(KvmCpuidEntry2[] table, uint function, uint index = 0) =>
        table.Single(e => e.Function == function && e.Index == index);

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 2)]
    [InlineData(3, 4)]
    [InlineData(5, 6)]
    public void Leaf1CarriesApicIdAndLogicalCount(int vcpu, int count)
    {
        var t = CpuidBuilder.Build(Supported, vcpu, count);
        var l1 = Leaf(t, 1);
        Assert.Equal((uint)vcpu, l1.Ebx >> 24);
        Assert.Equal((uint)count, (l1.Ebx >> 16) & 0xFF);
        Assert.Equal(0x0800u, l1.Ebx & 0xFFFF);               // CLFLUSH size and brand index kept
        Assert.NotEqual(0u, l1.Ecx & (1u << 31));              // hypervisor present
        Assert.Equal(count > 1, (l1.Edx & (1u << 28)) != 0);   // HTT only with several logical CPUs
    }

    [Fact]
    public void ExtendedTopologyIsRebuiltForTheVm()
    {
        var t = CpuidBuilder.Build(Supported, vcpuId: 2, cpuCount: 3);
        var smt = Leaf(t, 0xB, 0);
        var core = Leaf(t, 0xB, 1);
        var end = Leaf(t, 0xB, 2);
        Assert.Equal((0u, 1u, 0x100u, 2u), (smt.Eax, smt.Ebx, smt.Ecx, smt.Edx));
        Assert.Equal((2u, 3u, 0x201u, 2u), (core.Eax, core.Ebx, core.Ecx, core.Edx)); // 2 bits cover 3 cores
        Assert.Equal(0u, (end.Ecx >> 8) & 0xFF);
        Assert.All(t.Where(e => e.Function == 0xB), e => Assert.Equal(KvmCpuidEntry2.FlagSignificantIndex, e.Flags));
        Assert.Equal(3, t.Count(e => e.Function == 0xB));
    }

    [Fact]
    public void CacheLeafCountsTheVmsCores()
    {
        var l4 = Leaf(CpuidBuilder.Build(Supported, 0, 4), 4);
        Assert.Equal(3u, l4.Eax >> 26);
        Assert.Equal(0x121u, l4.Eax & 0x3FFF);
    }

    [Fact]
    public void AmdCoreCountLeaf()
    {
        var t = CpuidBuilder.Build(Supported, 0, 4);
        var l = Leaf(t, 0x8000_0008);
        Assert.Equal(3u, l.Ecx & 0xFF);
        Assert.Equal(2u, (l.Ecx >> 12) & 0xF);
        Assert.NotEqual(0u, Leaf(t, 0x8000_0001).Ecx & 2);
        Assert.Equal(0u, Leaf(CpuidBuilder.Build(Supported, 0, 1), 0x8000_0001).Ecx & 2);
    }

    [Fact]
    public void KvmParavirtLeavesArePresent()
    {
        var t = CpuidBuilder.Build(Supported, 0, 1);
        var sig = Leaf(t, 0x4000_0000);
        Assert.Equal("KVMKVMKVM\0\0\0", Signature(sig));
        Assert.Equal(0x01007AFBu, Leaf(t, 0x4000_0001).Eax); // kvmclock and friends as KVM reports them
    }

    [Fact]
    public void KvmLeavesAreAddedWhenTheHostOmitsThem()
    {
        var t = CpuidBuilder.Build(Supported.Where(e => e.Function < 0x4000_0000 || e.Function >= 0x8000_0000).ToArray(), 0, 1);
        Assert.Equal("KVMKVMKVM\0\0\0", Signature(Leaf(t, 0x4000_0000)));
        Assert.Equal(0x4000_0001u, Leaf(t, 0x4000_0000).Eax);
    }

    [Theory]
    [InlineData(1, 0u)]
    [InlineData(2, 1u)]
    [InlineData(3, 2u)]
    [InlineData(4, 2u)]
    [InlineData(5, 3u)]
    [InlineData(255, 8u)]
    public void CoreIdShift(int cpus, uint shift) => Assert.Equal(shift, CpuidBuilder.CoreIdShift(cpus));

    [Fact]
    public void VcpuOutsideTheVmIsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidBuilder.Build(Supported, 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidBuilder.Build(Supported, 0, 0));
    }

    private static string Signature(KvmCpuidEntry2 e) =>
        string.Concat(new[] { e.Ebx, e.Ecx, e.Edx }.SelectMany(BitConverter.GetBytes).Select(b => (char)b));
}
