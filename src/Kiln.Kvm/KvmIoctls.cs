namespace Kiln.Kvm;

/// <summary>Every KVM ioctl number Kiln uses, built like linux/ioctl.h's _IO/_IOR/_IOW/_IOWR.
/// A test checks each one against the host's &lt;linux/kvm.h&gt;.</summary>
public static class KvmIoctls
{
    private const uint KvmIo = 0xAE;

    private static ulong Io(uint nr) => (KvmIo << 8) | nr;
    private static ulong Ior(uint nr, int size) => (2UL << 30) | ((ulong)size << 16) | (KvmIo << 8) | nr;
    private static ulong Iow(uint nr, int size) => (1UL << 30) | ((ulong)size << 16) | (KvmIo << 8) | nr;
    private static ulong Iowr(uint nr, int size) => (3UL << 30) | ((ulong)size << 16) | (KvmIo << 8) | nr;

    // /dev/kvm
    public static readonly ulong GetApiVersion = Io(0x00);
    public static readonly ulong CreateVm = Io(0x01);
    public static readonly ulong GetMsrIndexList = Iowr(0x02, 4);
    public static readonly ulong CheckExtension = Io(0x03);
    public static readonly ulong GetVcpuMmapSize = Io(0x04);
    public static readonly ulong GetSupportedCpuid = Iowr(0x05, 8);

    // VM
    public static readonly ulong CreateVcpu = Io(0x41);
    public static readonly ulong GetDirtyLog = Iow(0x42, 16);
    public static readonly ulong SetUserMemoryRegion = Iow(0x46, 32);
    public static readonly ulong SetTssAddr = Io(0x47);
    public static readonly ulong SetIdentityMapAddr = Iow(0x48, 8);
    public static readonly ulong CreateIrqchip = Io(0x60);
    public static readonly ulong IrqLine = Iow(0x61, 8);
    public static readonly ulong GetIrqchip = Iowr(0x62, 520);
    public static readonly ulong SetIrqchip = Ior(0x63, 520);
    public static readonly ulong SetGsiRouting = Iow(0x6a, 8);
    public static readonly ulong Irqfd = Iow(0x76, 32);
    public static readonly ulong CreatePit2 = Iow(0x77, 64);
    public static readonly ulong Ioeventfd = Iow(0x79, 64);
    public static readonly ulong SetClock = Iow(0x7b, 48);
    public static readonly ulong GetClock = Ior(0x7c, 48);
    public static readonly ulong GetPit2 = Ior(0x9f, 112);
    public static readonly ulong SetPit2 = Iow(0xa0, 112);
    public static readonly ulong SignalMsi = Iow(0xa5, 32);
    public static readonly ulong EnableCap = Iow(0xa3, 104);

    // vCPU
    public static readonly ulong Run = Io(0x80);
    public static readonly ulong GetRegs = Ior(0x81, 144);
    public static readonly ulong SetRegs = Iow(0x82, 144);
    public static readonly ulong GetSregs = Ior(0x83, 312);
    public static readonly ulong SetSregs = Iow(0x84, 312);
    public static readonly ulong Translate = Iowr(0x85, 24);
    public static readonly ulong GetMsrs = Iowr(0x88, 8);
    public static readonly ulong SetMsrs = Iow(0x89, 8);
    public static readonly ulong GetFpu = Ior(0x8c, 416);
    public static readonly ulong SetFpu = Iow(0x8d, 416);
    public static readonly ulong GetLapic = Ior(0x8e, 1024);
    public static readonly ulong SetLapic = Iow(0x8f, 1024);
    public static readonly ulong SetCpuid2 = Iow(0x90, 8);
    public static readonly ulong GetCpuid2 = Iowr(0x91, 8);
    public static readonly ulong GetMpState = Ior(0x98, 4);
    public static readonly ulong SetMpState = Iow(0x99, 4);
    public static readonly ulong GetVcpuEvents = Ior(0x9f, 64);
    public static readonly ulong SetVcpuEvents = Iow(0xa0, 64);
    public static readonly ulong GetDebugRegs = Ior(0xa1, 128);
    public static readonly ulong SetDebugRegs = Iow(0xa2, 128);
    public static readonly ulong SetTscKhz = Io(0xa2);
    public static readonly ulong GetTscKhz = Io(0xa3);
    public static readonly ulong GetXsave = Ior(0xa4, 4096);
    public static readonly ulong SetXsave = Iow(0xa5, 4096);
    public static readonly ulong GetXcrs = Ior(0xa6, 392);
    public static readonly ulong SetXcrs = Iow(0xa7, 392);
    public static readonly ulong KvmclockCtrl = Io(0xad);
}
