using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Linux's struct boot_params (the 4 KiB "zero page"), built in a host buffer and written to
/// <see cref="BootLayout.ZeroPageAddress"/>. Offsets are those of arch/x86/include/uapi/asm/bootparam.h.</summary>
internal sealed class BootParams
{
    public const int Size = 4096;

    private const int ExtRamdiskImage = 0x0C0;
    private const int ExtRamdiskSize = 0x0C4;
    private const int ExtCmdLinePtr = 0x0C8;
    private const int E820Entries = 0x1E8;
    private const int VidMode = 0x1FA;
    private const int BootFlag = 0x1FE;
    private const int HeaderMagic = 0x202;
    private const int Version = 0x206;
    private const int TypeOfLoader = 0x210;
    private const int LoadFlags = 0x211;
    private const int RamdiskImage = 0x218;
    private const int RamdiskSize = 0x21C;
    private const int HeapEndPtr = 0x224;
    private const int CmdLinePtr = 0x228;
    private const int InitrdAddrMax = 0x22C;
    private const int KernelAlignment = 0x230;
    private const int CmdlineSize = 0x238;
    private const int E820Table = 0x2D0;
    public const int MaxE820Entries = 128;

    public const byte LoadedHigh = 0x01;
    public const byte CanUseHeap = 0x80;
    private const byte UndefinedLoader = 0xFF; // "unregistered boot loader"
    private const ushort NormalVga = 0xFFFF;
    private const ushort HeapEnd = 0xFE00; // end of the setup heap, relative to the real-mode segment

    private readonly byte[] _page = new byte[Size];

    /// <summary>A zero page whose setup header is the kernel's own (bzImage): the bytes from 0x1F1 to the end the
    /// header declares, so fields the loader does not set (kernel_alignment, init_size...) reach the kernel as built.</summary>
    public static BootParams FromSetupHeader(ReadOnlySpan<byte> headerBytes)
    {
        var p = new BootParams();
        headerBytes.CopyTo(p._page.AsSpan(SetupHeader.Offset));
        return p;
    }

    /// <summary>A zero page for a kernel without a setup header (ELF vmlinux): just the fields the kernel reads
    /// from a boot loader's header.</summary>
    public static BootParams Synthesized(ushort protocolVersion, uint kernelAlignment, uint cmdlineSize,
        uint initrdAddrMax)
    {
        var p = new BootParams();
        LittleEndian.Put16(p._page, BootFlag, SetupHeader.BootFlagValue);
        LittleEndian.Put32(p._page, HeaderMagic, SetupHeader.HeaderMagicValue);
        LittleEndian.Put16(p._page, Version, protocolVersion);
        p._page[LoadFlags] = LoadedHigh;
        LittleEndian.Put32(p._page, KernelAlignment, kernelAlignment);
        LittleEndian.Put32(p._page, CmdlineSize, cmdlineSize);
        LittleEndian.Put32(p._page, InitrdAddrMax, initrdAddrMax);
        return p;
    }

    /// <summary>The loader-owned fields every Linux boot sets.</summary>
    public void SetLoaderFields()
    {
        _page[TypeOfLoader] = UndefinedLoader;
        _page[LoadFlags] |= CanUseHeap;
        LittleEndian.Put16(_page, HeapEndPtr, HeapEnd);
        LittleEndian.Put16(_page, VidMode, NormalVga);
    }

    public void SetCommandLine(ulong address)
    {
        LittleEndian.Put32(_page, CmdLinePtr, (uint)address);
        LittleEndian.Put32(_page, ExtCmdLinePtr, (uint)(address >> 32));
    }

    public void SetRamdisk(ulong address, ulong size)
    {
        LittleEndian.Put32(_page, RamdiskImage, (uint)address);
        LittleEndian.Put32(_page, ExtRamdiskImage, (uint)(address >> 32));
        LittleEndian.Put32(_page, RamdiskSize, (uint)size);
        LittleEndian.Put32(_page, ExtRamdiskSize, (uint)(size >> 32));
    }

    public void SetE820(IReadOnlyList<E820Entry> entries)
    {
        if (entries.Count > MaxE820Entries)
            throw new BootException($"the memory map has {entries.Count} entries; boot_params holds {MaxE820Entries}");
        _page[E820Entries] = (byte)entries.Count;
        for (int i = 0; i < entries.Count; i++)
            E820Map.Put(_page.AsSpan(E820Table + i * E820Entry.EncodedSize, E820Entry.EncodedSize), entries[i]);
    }

    public void WriteTo(GuestMemory memory) => memory.Write(new GuestAddress(BootLayout.ZeroPageAddress), _page);
}
