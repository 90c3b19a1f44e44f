using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Loads the kernel a <see cref="BootRequest"/> names into guest memory and returns the boot CPU's entry
/// state. Formats, in detection order: multiboot v1 (checked first because multiboot kernels are usually ELF
/// files too), Linux bzImage, ELF64 vmlinux.</summary>
public static class KernelLoader
{
    public static BootEntry Load(GuestMemory memory, BootRequest request)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(request);
        if (request.CpuCount < 1)
            throw new BootException($"CPU count {request.CpuCount} must be at least 1");
        using var file = BootFile.Open(request.KernelPath, "kernel");
        try
        {
            byte[] head = file.ReadHead(MultibootHeader.SearchLimit);
            if (MultibootHeader.Find(head) is { } multiboot)
                return MultibootLoader.Load(memory, file, multiboot, request);
            if (SetupHeader.HasSignature(head))
                return BzImageLoader.Load(memory, file, head, request);
            if (ElfFile.HasMagic(head))
                return ElfKernelLoader.Load(memory, file, request);
            throw file.Fail("not a Linux bzImage, ELF or multiboot kernel");
        }
        catch (GuestMemoryException e)
        {
            // The loaders check addresses before writing; this is the safety net that keeps the message one line
            // naming the file.
            throw file.Fail($"does not fit in guest memory ({e.Message})", e);
        }
        catch (OverflowException e)
        {
            throw file.Fail("an address in the image overflows 64 bits", e);
        }
    }
}
