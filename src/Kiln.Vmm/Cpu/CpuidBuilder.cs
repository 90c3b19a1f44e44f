using Kiln.Kvm;

namespace Kiln.Vmm.Cpu;

/// <summary>Shapes KVM_GET_SUPPORTED_CPUID into the table one vCPU sees: its APIC id, the package topology
/// (N cores, one thread each), the hypervisor bit and KVM's paravirtual leaves. Pure, so it is unit-tested
/// without KVM.</summary>
public static class CpuidBuilder
{
    public const uint KvmSignatureLeaf = 0x4000_0000;
    public const uint KvmFeaturesLeaf = 0x4000_0001;

    // "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
    private const uint KvmSigEbx = 0x4B4D564B, KvmSigEcx = 0x564B4D56, KvmSigEdx = 0x0000004D;

    private const uint Leaf1EcxHypervisor = 1u << 31;
    private const uint Leaf1EdxHtt = 1u << 28;
    private const uint AmdExtCmpLegacy = 1u << 1;

    public static KvmCpuidEntry2[] Build(ReadOnlySpan<KvmCpuidEntry2> supported, int vcpuId, int cpuCount)
    {
        if (cpuCount < 1 || vcpuId < 0 || vcpuId >= cpuCount)
            throw new ArgumentOutOfRangeException(nameof(vcpuId), $"vCPU {vcpuId} of {cpuCount}");
        uint apicId = (uint)vcpuId;
        uint coreShift = CoreIdShift(cpuCount);
        var result = new List<KvmCpuidEntry2>(supported.Length + 8);
        bool haveKvmLeaves = false;

        foreach (var source in supported)
        {
            var e = source;
            switch (e.Function)
            {
                case 0x1:
                    e.Ebx = (e.Ebx & 0x0000_FFFF) | ((uint)Math.Min(cpuCount, 255) << 16) | (apicId << 24);
                    e.Ecx |= Leaf1EcxHypervisor;
                    e.Edx = cpuCount > 1 ? e.Edx | Leaf1EdxHtt : e.Edx & ~Leaf1EdxHtt;
                    break;
                case 0x4:
                    // Cores per package - 1 in EAX[31:26]; caches are private to each (single-thread) core.
                    if ((e.Eax & 0x1F) != 0)
                        e.Eax = (e.Eax & 0x0000_3FFF) | ((uint)(cpuCount - 1) << 26);
                    break;
                case 0xB:
                case 0x1F:
                    // Replaced below with our own topology.
                    continue;
                case KvmSignatureLeaf:
                    haveKvmLeaves = true;
                    e.Eax = Math.Max(e.Eax, KvmFeaturesLeaf);
                    e.Ebx = KvmSigEbx; e.Ecx = KvmSigEcx; e.Edx = KvmSigEdx;
                    break;
                case 0x8000_0001:
                    e.Ecx = cpuCount > 1 ? e.Ecx | AmdExtCmpLegacy : e.Ecx & ~AmdExtCmpLegacy;
                    break;
                case 0x8000_0008:
                    // AMD: NC (cores - 1) in ECX[7:0], APIC id core bits in ECX[15:12].
                    e.Ecx = (e.Ecx & ~0xF0FFu) | (uint)(cpuCount - 1) | (coreShift << 12);
                    break;
                case 0x8000_001E:
                    e.Eax = apicId;
                    e.Ebx = (e.Ebx & ~0xFFFFu) | apicId; // compute unit id; 1 thread per unit
                    e.Ecx &= ~0xFFu;                     // node 0
                    break;
            }
            result.Add(e);
        }

        if (supported.ToArray().Any(e => e.Function == 0 && e.Eax >= 0xB))
            AddTopologyLeaf(result, 0xB, apicId, coreShift, cpuCount);
        if (supported.ToArray().Any(e => e.Function == 0 && e.Eax >= 0x1F))
            AddTopologyLeaf(result, 0x1F, apicId, coreShift, cpuCount);
        if (!haveKvmLeaves)
        {
            result.Add(new KvmCpuidEntry2 { Function = KvmSignatureLeaf, Eax = KvmFeaturesLeaf, Ebx = KvmSigEbx, Ecx = KvmSigEcx, Edx = KvmSigEdx });
            result.Add(new KvmCpuidEntry2 { Function = KvmFeaturesLeaf });
        }
        return [.. result];
    }

    /// <summary>Bits of the APIC id that number the core: the smallest s with 2^s >= cpuCount.</summary>
    public static uint CoreIdShift(int cpuCount)
    {
        uint shift = 0;
        while ((1 << (int)shift) < cpuCount)
            shift++;
        return shift;
    }

    /// <summary>Extended topology (leaf 0xB / 0x1F): level 0 = SMT (one thread per core), level 1 = core.</summary>
    private static void AddTopologyLeaf(List<KvmCpuidEntry2> result, uint leaf, uint apicId, uint coreShift, int cpuCount)
    {
        const uint Flags = KvmCpuidEntry2.FlagSignificantIndex;
        result.Add(new KvmCpuidEntry2 { Function = leaf, Index = 0, Flags = Flags, Eax = 0, Ebx = 1, Ecx = (1u << 8) | 0, Edx = apicId });
        result.Add(new KvmCpuidEntry2 { Function = leaf, Index = 1, Flags = Flags, Eax = coreShift, Ebx = (uint)cpuCount, Ecx = (2u << 8) | 1, Edx = apicId });
        result.Add(new KvmCpuidEntry2 { Function = leaf, Index = 2, Flags = Flags, Eax = 0, Ebx = 0, Ecx = 2, Edx = apicId });
    }
}
