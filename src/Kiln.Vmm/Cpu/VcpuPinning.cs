using Kiln.Interop;

namespace Kiln.Vmm.Cpu;

/// <summary>Keeps the vCPU threads of one machine on different host CPUs where the host's KVM is PVM. It was added
/// when 2-vCPU Linux guests lost processes at init on this host and made that rarer. The cause was found later and
/// is not the threads' placement: PVM runs guest ring 3 under the host's XCR0, so glibc uses AVX-512 registers that a
/// `noxsave` guest kernel never switches between tasks (guestkit/README.md; the kit's command line now keeps glibc
/// off AVX). The pinning stays until 2-vCPU boots without it are counted again. Elsewhere the host scheduler stays
/// free to place threads.</summary>
public static class VcpuPinning
{
    /// <summary>The PVM backend registers this module; hardware-virtualization hosts have kvm_intel / kvm_amd.</summary>
    private const string PvmModule = "/sys/module/kvm_pvm";

    public static bool HostIsPvm => Directory.Exists(PvmModule);

    /// <summary>The host CPU for vCPU VCPUID of VCPUCOUNT, or null to leave the thread unpinned: only on PVM hosts,
    /// only with several vCPUs, and only when every vCPU can have a host CPU of its own.</summary>
    public static int? HostCpuFor(int vcpuId, int vcpuCount, IReadOnlyList<int> allowedCpus, bool pvmHost)
    {
        if (!pvmHost || vcpuCount < 2 || vcpuId < 0 || vcpuId >= vcpuCount || allowedCpus.Count < vcpuCount)
            return null;
        return allowedCpus[vcpuId];
    }

    /// <summary>Pins the calling vCPU thread when <see cref="HostCpuFor"/> says so; says once why it cannot.</summary>
    public static void ApplyToCurrentThread(int vcpuId, int vcpuCount)
    {
        if (!HostIsPvm || vcpuCount < 2)
            return;
        var allowed = CpuAffinity.AllowedCpus();
        if (HostCpuFor(vcpuId, vcpuCount, allowed, pvmHost: true) is int cpu)
        {
            CpuAffinity.PinCurrentThread(cpu);
            KilnLog.Debug($"vCPU {vcpuId}: pinned to host CPU {cpu} (PVM host)");
        }
        else if (vcpuId == 0)
        {
            KilnLog.Warn($"{vcpuCount} vCPUs but {allowed.Count} host CPU(s) for them: vCPUs share host CPUs on this PVM host");
        }
    }
}
