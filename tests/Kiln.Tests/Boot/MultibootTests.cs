using Kiln.Boot;
using Kiln.Memory;
using static Kiln.Tests.Boot.TestImages;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

public sealed class MultibootTests : IDisposable
{
    private const uint MemInfoFlags = 0x3; // page-align modules, memory information
    private const ulong Info = 0x10000;

    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>An ELF32 like the project's test guests: one PT_LOAD at 1 MiB whose first bytes are the
    /// multiboot header, followed by 0x1F00 bytes of bss.</summary>
    private static (byte[] File, byte[] Code) Elf32Guest()
    {
        byte[] code = Code(0x100, MultibootHeader(MemInfoFlags));
        return (Elf(false, MachineI386, 0x10000C, new TestSegment(0x1000, 0x100000, 0x100000, code, 0x2000)), code);
    }

    private static BootEntry Load(GuestMemory memory, string kernel, string? initrd = null, string commandLine = "") =>
        KernelLoader.Load(memory, new BootRequest(kernel, initrd, commandLine, 1));

    private static BootException Refused(GuestMemory memory, string kernel, string reason, string? initrd = null)
    {
        var e = Assert.Throws<BootException>(() => Load(memory, kernel, initrd));
        Assert.Contains(initrd ?? kernel, e.Message);
        Assert.Contains(reason, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void Elf32KernelIsLoadedAndEnteredInProtectedMode()
    {
        var (file, code) = Elf32Guest();
        string kernel = _files.Write("guest.elf", file);
        using var memory = Create(512 * MiB);
        memory.Fill(new GuestAddress(0x100100), 0x1F00, 0xCC); // stale bytes where the bss goes

        var entry = Load(memory, kernel);

        Assert.Equal(CpuEntryMode.Protected32, entry.Mode);
        Assert.Equal(0x10000CUL, entry.Rip);
        Assert.Equal(0x2BADB002UL, entry.Rax);
        Assert.Equal(Info, entry.Rbx);
        Assert.Equal(0UL, entry.Cr3);
        Assert.Equal(code, memory.Bytes(0x100000, code.Length));
        Assert.All(memory.Bytes(0x100100, 0x1F00), b => Assert.Equal(0, b));
        Assert.StartsWith("multiboot ELF32", entry.Description);
    }

    [Fact]
    public void GdtIsFlat32BitWithTss()
    {
        string kernel = _files.Write("guest.elf", Elf32Guest().File);
        using var memory = Create(64 * MiB);
        var entry = Load(memory, kernel);

        Assert.Equal(0x500UL, entry.GdtBase.Value);
        Assert.Equal((ushort)0x1F, entry.GdtLimit);
        Assert.Equal((ushort)0x08, entry.CodeSelector);
        Assert.Equal(0x00CF9B000000FFFFUL, entry.CodeDescriptor);
        Assert.Equal((ushort)0x10, entry.DataSelector);
        Assert.Equal(0x00CF93000000FFFFUL, entry.DataDescriptor);
        Assert.Equal((ushort)0x18, entry.TssSelector);
        Assert.Equal(entry.CodeDescriptor, memory.U64(0x508));
        Assert.Equal(entry.DataDescriptor, memory.U64(0x510));
        Assert.Equal(entry.TssDescriptor, memory.U64(0x518));
        var code = new SegmentDescriptor(entry.CodeDescriptor);
        Assert.True(code.IsDefaultSize32);
        Assert.False(code.IsLongMode);
        Assert.Equal(0xFFFFFFFFu, code.Limit);
    }

    [Fact]
    public void InfoStructureDescribesMemoryCommandLineModuleAndMap()
    {
        string kernel = _files.Write("guest.elf", Elf32Guest().File);
        string initrd = _files.WritePattern("module.bin", 10_000);
        using var memory = Create(512 * MiB);
        Load(memory, kernel, initrd, "test=smp verbose");

        uint flags = memory.U32(Info);
        Assert.Equal(1u << 0 | 1u << 2 | 1u << 3 | 1u << 6 | 1u << 9, flags);
        Assert.Equal(640u, memory.U32(Info + 4));
        Assert.Equal((uint)((512 * MiB - MiB) / 1024), memory.U32(Info + 8));
        Assert.Equal("test=smp verbose", memory.CString(memory.U32(Info + 16)));

        Assert.Equal(1u, memory.U32(Info + 20));
        ulong module = memory.U32(Info + 24);
        uint start = memory.U32(module);
        uint end = memory.U32(module + 4);
        Assert.Equal(0x102000u, start); // page aligned right after the image's bss
        Assert.Equal(start + 10_000u, end);
        Assert.Equal(initrd, memory.CString(memory.U32(module + 8)));
        Assert.Equal(0u, memory.U32(module + 12));
        Assert.Equal(File.ReadAllBytes(initrd), memory.Bytes(start, 10_000));

        uint mmapLength = memory.U32(Info + 44);
        ulong mmap = memory.U32(Info + 48);
        Assert.Equal(4u * 24, mmapLength);
        var entries = new List<(ulong, ulong, uint)>();
        for (ulong e = mmap; e < mmap + mmapLength; e += 4 + memory.U32(e))
        {
            Assert.Equal(20u, memory.U32(e));
            entries.Add(memory.E820At(e + 4));
        }
        Assert.Equal(
        [
            (0UL, 0x9FC00UL, 1u), (0x9FC00UL, 0x400UL, 2u), (0xF0000UL, 0x10000UL, 2u), (0x100000UL, 511 * MiB, 1u),
        ], entries);

        Assert.Equal("kiln", memory.CString(memory.U32(Info + 64)));
    }

    [Fact]
    public void WithoutInitrdThereAreNoModules()
    {
        string kernel = _files.Write("guest.elf", Elf32Guest().File);
        using var memory = Create(64 * MiB);
        Load(memory, kernel);
        Assert.Equal(0u, memory.U32(Info + 20));
        Assert.Equal("", memory.CString(memory.U32(Info + 16)));
    }

    [Fact]
    public void MemoryMapCoversRamAbove4GiB()
    {
        string kernel = _files.Write("guest.elf", Elf32Guest().File);
        using var memory = Create(4 * GiB + 512 * MiB);
        Load(memory, kernel);
        Assert.Equal(5u * 24, memory.U32(Info + 44));
        ulong last = memory.U32(Info + 48) + 4 * 24;
        Assert.Equal((4 * GiB, 1536 * MiB, 1u), memory.E820At(last + 4));
        Assert.Equal((uint)((3 * GiB - MiB) / 1024), memory.U32(Info + 8));
    }

    [Fact]
    public void Elf64KernelWithMultibootHeaderIsMultibootNotVmlinux()
    {
        // Like the project's guests: an x86-64 ELF whose 32-bit entry code carries the multiboot header. The
        // segment is linked high, so the entry point must be translated to its physical address.
        byte[] code = Code(0x200, MultibootHeader(MemInfoFlags));
        byte[] file = Elf(true, MachineX86_64, 0xFFFF_FFFF_8010_0010,
            new TestSegment(0x1000, 0xFFFF_FFFF_8010_0000, 0x100000, code, 0x1000));
        string kernel = _files.Write("guest64.elf", file);
        using var memory = Create(64 * MiB);

        var entry = Load(memory, kernel);

        Assert.Equal(CpuEntryMode.Protected32, entry.Mode);
        Assert.Equal(0x100010UL, entry.Rip);
        Assert.Equal(code, memory.Bytes(0x100000, code.Length));
        Assert.StartsWith("multiboot ELF64", entry.Description);
    }

    [Fact]
    public void AddressFieldsImageIsLoadedPerTheHeader()
    {
        // Flat image: header at file offset 0x40 claims to live at 0x200040, so the file's byte 0 goes to
        // 0x200000; 0x300 bytes are loaded, the bss runs to 0x204000, entry at 0x200080.
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x200040, 0x200000, 0x200300, 0x204000, 0x200080);
        byte[] image = Code(0x400);
        header.CopyTo(image, 0x40);
        string kernel = _files.Write("flat.bin", image);
        using var memory = Create(64 * MiB);
        memory.Fill(new GuestAddress(0x200300), 0x3D00, 0xCC);

        var entry = Load(memory, kernel);

        Assert.Equal(0x200080UL, entry.Rip);
        Assert.Equal(image.AsSpan(0, 0x300).ToArray(), memory.Bytes(0x200000, 0x300));
        Assert.All(memory.Bytes(0x200300, 0x3D00), b => Assert.Equal(0, b));
        Assert.Contains("address fields", entry.Description);
    }

    [Fact]
    public void AddressFieldsModuleGoesAfterTheBss()
    {
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x200000, 0x200000, 0, 0x204001, 0x200020);
        byte[] image = Code(0x100, header);
        string kernel = _files.Write("flat.bin", image);
        string initrd = _files.WritePattern("module.bin", 4096);
        using var memory = Create(64 * MiB);

        Load(memory, kernel, initrd);

        ulong module = memory.U32(Info + 24);
        Assert.Equal(0x205000u, memory.U32(module));
        Assert.Equal(0x206000u, memory.U32(module + 4));
    }

    [Fact]
    public void AddressFieldsBelow1MiBAreRefused()
    {
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x10000, 0x10000, 0x10100, 0, 0x10020);
        string kernel = _files.Write("low.bin", Code(0x100, header));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "outside the loadable range");
    }

    [Fact]
    public void AddressFieldsBeyondRamAreRefused()
    {
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x8000000, 0x8000000, 0, 0x9000000, 0x8000020);
        string kernel = _files.Write("high.bin", Code(0x100, header));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "0x8000000");
    }

    [Fact]
    public void AddressFieldsNeedingMoreFileThanThereIsAreRefused()
    {
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x200000, 0x200000, 0x210000, 0, 0x200020);
        string kernel = _files.Write("short.bin", Code(0x100, header));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "truncated");
    }

    [Fact]
    public void EntryOutsideTheImageIsRefused()
    {
        byte[] header = MultibootHeader(MemInfoFlags | 1 << 16, 0x200000, 0x200000, 0, 0, 0x300000);
        string kernel = _files.Write("entry.bin", Code(0x100, header));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "entry_addr");
    }

    [Fact]
    public void OverlappingSegmentsAreRefused()
    {
        byte[] code = Code(0x1000, MultibootHeader(MemInfoFlags));
        byte[] file = Elf(false, MachineI386, 0x10000C,
            new TestSegment(0x1000, 0x100000, 0x100000, code, 0x2000),
            new TestSegment(0x2000, 0x101000, 0x101000, Code(0x100), 0x100));
        string kernel = _files.Write("overlap.elf", file);
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "overlap");
    }

    [Fact]
    public void SegmentOutsideRamIsRefused()
    {
        byte[] code = Code(0x100, MultibootHeader(MemInfoFlags));
        byte[] file = Elf(false, MachineI386, 0x7FF0000C, new TestSegment(0x1000, 0x7FF00000, 0x7FF00000, code, 0x100));
        string kernel = _files.Write("high.elf", file);
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "0x7ff00000");
    }

    [Fact]
    public void SegmentFileRangePastTheEndIsRefused()
    {
        var (file, _) = Elf32Guest();
        string kernel = _files.Write("cut.elf", file.AsSpan(0, 0x1080));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "truncated");
    }

    [Fact]
    public void ModuleThatDoesNotFitIsRefused()
    {
        string kernel = _files.Write("guest.elf", Elf32Guest().File);
        string initrd = _files.WriteSparse("big.img", 8L << 20);
        using var memory = Create(8 * MiB);
        Refused(memory, kernel, "does not fit", initrd);
    }

    [Fact]
    public void VideoModeRequirementIsRefused()
    {
        byte[] code = Code(0x100, MultibootHeader(MemInfoFlags | 1 << 2));
        string kernel = _files.Write("video.elf", Elf(false, MachineI386, 0x10000C,
            new TestSegment(0x1000, 0x100000, 0x100000, code, 0x100)));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "video mode");
    }

    [Fact]
    public void HeaderWithBadChecksumIsIgnored()
    {
        byte[] header = MultibootHeader(MemInfoFlags);
        header[8] ^= 1;
        string kernel = _files.Write("bad-checksum.bin", Code(0x100, header));
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "not a Linux bzImage, ELF or multiboot kernel");
    }

    [Fact]
    public void HeaderBeyondTheFirst8KiBIsIgnored()
    {
        byte[] image = Code(0x3000);
        MultibootHeader(MemInfoFlags).CopyTo(image, 0x2000);
        string kernel = _files.Write("late-header.bin", image);
        using var memory = Create(64 * MiB);
        Refused(memory, kernel, "not a Linux bzImage, ELF or multiboot kernel");
    }
}
