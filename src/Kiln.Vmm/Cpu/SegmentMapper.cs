using Kiln.Boot;
using Kiln.Kvm;

namespace Kiln.Vmm.Cpu;

/// <summary>Turns a raw GDT descriptor into the hidden segment-register state KVM loads, so the registers agree
/// with the GDT the loader wrote into guest memory.</summary>
public static class SegmentMapper
{
    public static KvmSegment FromDescriptor(ushort selector, ulong raw)
    {
        var d = new SegmentDescriptor(raw);
        return new KvmSegment
        {
            Base = d.Base,
            Limit = d.Limit,
            Selector = selector,
            Type = d.Type,
            Present = d.IsPresent ? (byte)1 : (byte)0,
            Dpl = d.Dpl,
            Db = d.IsDefaultSize32 ? (byte)1 : (byte)0,
            S = d.IsCodeOrData ? (byte)1 : (byte)0,
            L = d.IsLongMode ? (byte)1 : (byte)0,
            G = d.IsPageGranular ? (byte)1 : (byte)0,
            Avl = d.Available ? (byte)1 : (byte)0,
        };
    }
}
