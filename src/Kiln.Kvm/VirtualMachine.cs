using Kiln.Interop;

namespace Kiln.Kvm;

/// <summary>A KVM VM handle: memory slots, the in-kernel irqchip and PIT, interrupt lines, vCPU creation.</summary>
public sealed unsafe class VirtualMachine : IDisposable
{
    private readonly FileDescriptor _fd;

    internal VirtualMachine(Kvm kvm, FileDescriptor fd)
    {
        Kvm = kvm;
        _fd = fd;
    }

    public Kvm Kvm { get; }

    public const uint MemLogDirtyPages = 1;
    public const uint MemReadonly = 2;

    /// <summary>Maps host memory at a guest-physical address. The caller (the memory layer) owns the mapping
    /// and keeps it alive for as long as the slot exists.</summary>
    public void SetUserMemoryRegion(uint slot, ulong guestPhys, ulong size, nint hostAddress, uint flags = 0)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot, Flags = flags, GuestPhysAddr = guestPhys, MemorySize = size, UserspaceAddr = (ulong)hostAddress,
        };
        KvmIoctl.Call(_fd, KvmIoctls.SetUserMemoryRegion, &region, "KVM_SET_USER_MEMORY_REGION");
    }

    public void SetTssAddress(uint address) => KvmIoctl.Call(_fd, KvmIoctls.SetTssAddr, address, "KVM_SET_TSS_ADDR");

    public void SetIdentityMapAddress(ulong address) =>
        KvmIoctl.Call(_fd, KvmIoctls.SetIdentityMapAddr, &address, "KVM_SET_IDENTITY_MAP_ADDR");

    public void CreateIrqchip() => KvmIoctl.Call(_fd, KvmIoctls.CreateIrqchip, 0, "KVM_CREATE_IRQCHIP");

    public void CreatePit2(uint flags)
    {
        var config = new KvmPitConfig { Flags = flags };
        KvmIoctl.Call(_fd, KvmIoctls.CreatePit2, &config, "KVM_CREATE_PIT2");
    }

    /// <summary>Drives a GSI (for ISA devices: the IRQ number, routed to both PIC and IOAPIC) to a level.</summary>
    public void SetIrqLine(uint irq, bool high)
    {
        var level = new KvmIrqLevel { Irq = irq, Level = high ? 1u : 0u };
        KvmIoctl.Call(_fd, KvmIoctls.IrqLine, &level, "KVM_IRQ_LINE");
    }

    public Vcpu CreateVcpu(int id)
    {
        int fd = KvmIoctl.Call(_fd, KvmIoctls.CreateVcpu, (nuint)id, "KVM_CREATE_VCPU");
        return new Vcpu(id, new FileDescriptor(fd), Kvm.VcpuMmapSize);
    }

    public void Irqfd(FileDescriptor eventFd, uint gsi, bool deassign = false)
    {
        var irqfd = new KvmIrqfd { Fd = (uint)eventFd.Number, Gsi = gsi, Flags = deassign ? KvmIrqfd.FlagDeassign : 0 };
        KvmIoctl.Call(_fd, KvmIoctls.Irqfd, &irqfd, "KVM_IRQFD");
    }

    public void Ioeventfd(FileDescriptor eventFd, ulong address, uint length, bool pio, ulong? datamatch = null, bool deassign = false)
    {
        var ioeventfd = new KvmIoeventfd
        {
            Addr = address, Len = length, Fd = eventFd.Number, Datamatch = datamatch ?? 0,
            Flags = (pio ? KvmIoeventfd.FlagPio : 0) | (datamatch.HasValue ? KvmIoeventfd.FlagDatamatch : 0)
                    | (deassign ? KvmIoeventfd.FlagDeassign : 0),
        };
        KvmIoctl.Call(_fd, KvmIoctls.Ioeventfd, &ioeventfd, "KVM_IOEVENTFD");
    }

    public void SignalMsi(ulong address, uint data)
    {
        var msi = new KvmMsi { AddressLo = (uint)address, AddressHi = (uint)(address >> 32), Data = data };
        KvmIoctl.Call(_fd, KvmIoctls.SignalMsi, &msi, "KVM_SIGNAL_MSI");
    }

    public KvmClockData GetClock()
    {
        KvmClockData data;
        KvmIoctl.Call(_fd, KvmIoctls.GetClock, &data, "KVM_GET_CLOCK");
        return data;
    }

    public void SetClock(KvmClockData data) => KvmIoctl.Call(_fd, KvmIoctls.SetClock, &data, "KVM_SET_CLOCK");

    /// <summary>Chip 0 = master PIC, 1 = slave PIC, 2 = IOAPIC.</summary>
    public KvmIrqchip GetIrqchip(uint chipId)
    {
        KvmIrqchip chip = default;
        *(uint*)&chip = chipId;
        KvmIoctl.Call(_fd, KvmIoctls.GetIrqchip, &chip, "KVM_GET_IRQCHIP");
        return chip;
    }

    public void SetIrqchip(KvmIrqchip chip) => KvmIoctl.Call(_fd, KvmIoctls.SetIrqchip, &chip, "KVM_SET_IRQCHIP");

    public KvmPitState2 GetPit2()
    {
        KvmPitState2 state;
        KvmIoctl.Call(_fd, KvmIoctls.GetPit2, &state, "KVM_GET_PIT2");
        return state;
    }

    public void SetPit2(KvmPitState2 state) => KvmIoctl.Call(_fd, KvmIoctls.SetPit2, &state, "KVM_SET_PIT2");

    /// <summary>Fills a bitmap (one bit per 4 KiB page of the slot) with the pages dirtied since the last call.</summary>
    public void GetDirtyLog(uint slot, Span<ulong> bitmap)
    {
        // SAFETY: KVM_GET_DIRTY_LOG writes one bit per page of the slot, and bitmap was sized for the slot's pages.
        fixed (ulong* p = bitmap)
        {
            var log = new KvmDirtyLog { Slot = slot, DirtyBitmap = (ulong)p };
            KvmIoctl.Call(_fd, KvmIoctls.GetDirtyLog, &log, "KVM_GET_DIRTY_LOG");
        }
    }

    public void Dispose() => _fd.Dispose();
}
