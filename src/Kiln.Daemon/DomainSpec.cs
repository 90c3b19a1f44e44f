using Kiln.Contracts.Spec;

namespace Kiln.Daemon;

/// <summary>A domain definition as the <see cref="VmSpec"/> its VMM runs: the one mapping from the daemon's shape to
/// the VMM's, with every value carried as it is (a disk serial "x,format=qcow2" is a serial, nothing else).</summary>
public static class DomainSpec
{
    /// <summary>The spec that boots <paramref name="d"/> (disks in target order: vda, vdb, ...), validated.</summary>
    public static VmSpec From(DomainDefinition d, StartSource? source = null) => VmSpecValidator.Check(new VmSpec
    {
        Name = d.Name,
        Machine = new MachineSpec
        {
            MemoryBytes = d.MemoryMiB << 20, Cpus = d.Vcpus, NoReboot = d.OnReboot == "destroy",
            Transport = d.Transport == "mmio" ? VirtioTransport.Mmio : VirtioTransport.Pci,
        },
        Boot = new BootSpec { Kernel = d.Os.Kernel, Initrd = d.Os.Initrd, CommandLine = d.Os.Cmdline },
        Disks = [.. d.Disks.OrderBy(x => x.Target, StringComparer.Ordinal)
            .Select(x => new DiskSpec { Path = x.Path, Format = x.Format, ReadOnly = x.ReadOnly, Serial = x.Serial })],
        Nics = [.. d.Interfaces.Select(n => new NicSpec { Tap = n.Tap ?? "", Mac = n.Mac?.ToLowerInvariant(), Bridge = n.Bridge })],
        Console = d.Console == "virtio" ? ConsoleKind.Virtio : ConsoleKind.Serial,
        Devices = new DeviceSpec { Rng = d.Rng },
        Source = source,
    });
}
