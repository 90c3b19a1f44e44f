using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Loads the initrd where boot.rst recommends: page aligned, as high as possible below both the
/// kernel's initrd_addr_max and the top of RAM below 4 GiB, and above everything the kernel occupies.</summary>
internal static class LinuxInitrd
{
    /// <param name="kernelEnd">First byte the kernel does not need during early boot.</param>
    /// <param name="initrdAddrMax">Highest address (inclusive) the initrd may occupy.</param>
    /// <returns>Guest address and size of the loaded initrd.</returns>
    public static (ulong Address, ulong Size) Load(GuestMemory memory, string path, ulong kernelEnd, ulong initrdAddrMax)
    {
        using var initrd = BootFile.Open(path, "initrd");
        ulong size = (ulong)initrd.Length;
        ulong top = Math.Min(initrdAddrMax == ulong.MaxValue ? initrdAddrMax : initrdAddrMax + 1, E820Map.LowRamEnd(memory));
        ulong floor = Align.Up(kernelEnd, Align.Page);
        ulong start = size <= top ? Align.Down(top - size, Align.Page) : 0;
        if (size > top || start < floor)
            throw initrd.Fail($"initrd of {size:#,0} bytes does not fit in guest RAM between the kernel's end " +
                $"(0x{floor:x}) and 0x{top:x} (top of RAM below 4 GiB or the kernel's initrd_addr_max)");
        initrd.CopyToGuest(memory, 0, size, new GuestAddress(start), "initrd");
        return (start, size);
    }
}
