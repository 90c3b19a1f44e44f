using Kiln.Interop;

namespace Kiln.Kvm;

/// <summary>A KVM ioctl failed, or the host's KVM lacks something Kiln needs.</summary>
public sealed class KvmException : KilnException
{
    public KvmException(string message) : base(message)
    {
    }

    public KvmException(string ioctl, int errno) : base(new SystemCallException(ioctl, errno).Message)
    {
        Ioctl = ioctl;
        Errno = errno;
    }

    public string? Ioctl { get; }
    public int Errno { get; }
}
