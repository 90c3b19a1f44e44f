using System.Runtime.InteropServices;
using Kiln.Interop;

namespace Kiln.Kvm;

/// <summary>The /dev/kvm system handle: capability checks, supported CPUID, and VM creation.</summary>
public sealed unsafe class Kvm : IDisposable
{
    public const int ExpectedApiVersion = 12;
    private const int E2BIG = 7;

    /// <summary>What a VMM needs from the host's KVM before it can boot anything.</summary>
    public static readonly KvmCap[] RequiredCapabilities =
    [
        KvmCap.Irqchip, KvmCap.UserMemory, KvmCap.SetTssAddr, KvmCap.ExtCpuid, KvmCap.Pit2,
        KvmCap.Irqfd, KvmCap.Ioeventfd, KvmCap.IrqRouting, KvmCap.ImmediateExit,
    ];

    private readonly FileDescriptor _fd;

    private Kvm(FileDescriptor fd) => _fd = fd;

    /// <summary>Opens /dev/kvm, checks the API version and the required capabilities; each failure is one clear line.</summary>
    public static Kvm Open(string path = "/dev/kvm")
    {
        int fd = Libc.open(path, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new KvmException(errno switch
            {
                Errno.ENOENT => $"{path} does not exist: KVM is not available on this host (load kvm_intel or kvm_amd, or enable nested virtualization)",
                Errno.EACCES or Errno.EPERM => $"permission denied opening {path}: run as root or add your user to the 'kvm' group",
                _ => new SystemCallException("open", errno, path).Message,
            });
        }
        var kvm = new Kvm(new FileDescriptor(fd));
        try
        {
            int version = KvmIoctl.Call(kvm._fd, KvmIoctls.GetApiVersion, 0, "KVM_GET_API_VERSION");
            if (version != ExpectedApiVersion)
                throw new KvmException($"{path} speaks KVM API version {version}; Kiln needs {ExpectedApiVersion}");
            kvm.RequireCapabilities(RequiredCapabilities);
            return kvm;
        }
        catch
        {
            kvm.Dispose();
            throw;
        }
    }

    public int CheckExtension(KvmCap cap) => Libc.ioctl(_fd.Number, KvmIoctls.CheckExtension, (nuint)cap) is var r && r < 0 ? 0 : r;

    public void RequireCapabilities(IEnumerable<KvmCap> caps)
    {
        var missing = caps.Where(c => CheckExtension(c) <= 0).ToList();
        if (missing.Count > 0)
            throw new KvmException($"the host's KVM lacks required capabilities: {string.Join(", ", missing)}");
    }

    public int VcpuMmapSize => KvmIoctl.Call(_fd, KvmIoctls.GetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE");

    /// <summary>KVM_GET_SUPPORTED_CPUID, growing the buffer until the kernel's table fits.</summary>
    public KvmCpuidEntry2[] GetSupportedCpuid()
    {
        for (int capacity = 128; capacity <= 4096; capacity *= 2)
        {
            var buffer = new byte[8 + capacity * sizeof(KvmCpuidEntry2)];
            // SAFETY: the ioctl writes at most the size the header at p announces, which is buffer's own length.
            fixed (byte* p = buffer)
            {
                *(uint*)p = (uint)capacity;
                if (Libc.ioctl(_fd.Number, KvmIoctls.GetSupportedCpuid, p) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == E2BIG)
                        continue;
                    throw new KvmException("KVM_GET_SUPPORTED_CPUID", errno);
                }
                int n = (int)*(uint*)p;
                return new ReadOnlySpan<KvmCpuidEntry2>(p + 8, n).ToArray();
            }
        }
        throw new KvmException("KVM_GET_SUPPORTED_CPUID: table larger than 4096 entries");
    }

    /// <summary>KVM_GET_MSR_INDEX_LIST: the MSRs KVM can save and restore.</summary>
    public uint[] GetMsrIndexList()
    {
        for (int capacity = 256; capacity <= 16384; capacity *= 2)
        {
            var buffer = new uint[1 + capacity];
            // SAFETY: KVM_GET_MSR_INDEX_LIST writes at most nmsrs (the count at p, set from buffer's length) indices after it.
            fixed (uint* p = buffer)
            {
                p[0] = (uint)capacity;
                if (Libc.ioctl(_fd.Number, KvmIoctls.GetMsrIndexList, p) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == E2BIG)
                        continue;
                    throw new KvmException("KVM_GET_MSR_INDEX_LIST", errno);
                }
                return buffer.AsSpan(1, (int)p[0]).ToArray();
            }
        }
        throw new KvmException("KVM_GET_MSR_INDEX_LIST: list too long");
    }

    public VirtualMachine CreateVm()
    {
        int fd = KvmIoctl.Call(_fd, KvmIoctls.CreateVm, 0, "KVM_CREATE_VM");
        return new VirtualMachine(this, new FileDescriptor(fd));
    }

    public void Dispose() => _fd.Dispose();
}
