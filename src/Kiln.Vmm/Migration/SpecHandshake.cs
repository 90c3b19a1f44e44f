using Kiln.Contracts.Spec;

namespace Kiln.Vmm.Migration;

/// <summary>The <see cref="MigrationFrame.Spec"/> frame: the source's spec travels with its guest, and the destination
/// refuses a machine whose state would not fit its own (RAM, vCPUs, transport, console, the virtio device list).
/// Paths, names and TAP interfaces may differ: they belong to the destination's host.</summary>
internal static class SpecHandshake
{
    public static byte[] Payload(VmSpec spec) => VmSpecJson.ToUtf8(spec with { Source = null });

    public static void Check(byte[] payload, VmSpec local)
    {
        VmSpec source;
        try
        {
            source = VmSpecJson.Parse(payload);
        }
        catch (VmSpecException e)
        {
            throw new MigrationException($"protocol error: the source's spec is not valid: {e.Message}", e);
        }
        string? difference =
            source.Machine.MemoryBytes != local.Machine.MemoryBytes ? $"{source.Machine.MemoryBytes >> 20} MiB of RAM, this VMM {local.Machine.MemoryBytes >> 20}"
            : source.Machine.Cpus != local.Machine.Cpus ? $"{source.Machine.Cpus} vCPUs, this VMM {local.Machine.Cpus}"
            : source.Machine.Transport != local.Machine.Transport ? $"virtio-{SpecEnum.Name(source.Machine.Transport)}, this VMM virtio-{SpecEnum.Name(local.Machine.Transport)}"
            : source.Console != local.Console ? $"a {SpecEnum.Name(source.Console)} console, this VMM {SpecEnum.Name(local.Console)}"
            : source.Disks.Count != local.Disks.Count ? $"{source.Disks.Count} disks, this VMM {local.Disks.Count}"
            : source.Nics.Count != local.Nics.Count ? $"{source.Nics.Count} NICs, this VMM {local.Nics.Count}"
            : source.Devices.Rng != local.Devices.Rng ? $"{(source.Devices.Rng ? "an" : "no")} rng device, this VMM {(local.Devices.Rng ? "one" : "none")}"
            : source.Devices.DebugExitPort != local.Devices.DebugExitPort ? "another debug-exit port"
            : null;
        if (difference is not null)
            throw new MigrationException($"the source's guest has {difference}");
    }
}
