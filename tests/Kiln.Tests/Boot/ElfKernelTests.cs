using Kiln.Boot;
using static Kiln.Tests.Boot.TestImages;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

/// <summary>Direct boot of an uncompressed vmlinux (ELF64 x86-64, no multiboot header).</summary>
public sealed class ElfKernelTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static byte[] Vmlinux(ulong entry, ushort machine = MachineX86_64, bool is64 = true) =>
        Elf(is64, machine, entry,
            new TestSegment(0x1000, 0xFFFF_FFFF_8100_0000, 0x100_0000, Code(0x3000), 0x10000),
            new TestSegment(0x4000, 0xFFFF_FFFF_8200_0000, 0x200_0000, Code(0x1000), 0x8000));

    [Theory]
    [InlineData(0x100_0000UL)]             // physical, as vmlinux links it (phys_startup_64)
    [InlineData(0xFFFF_FFFF_8100_0000UL)]  // virtual: __START_KERNEL_map is subtracted
    public void VmlinuxIsLoadedAtPhysicalAddressesAndEnteredInLongMode(ulong elfEntry)
    {
        string kernel = _files.Write("vmlinux", Vmlinux(elfEntry));
        string initrd = _files.WritePattern("initrd", 5000);
        using var memory = Create(256 * MiB);

        var entry = KernelLoader.Load(memory, new BootRequest(kernel, initrd, "root=/dev/vda", 2));

        Assert.Equal(CpuEntryMode.Long64, entry.Mode);
        Assert.Equal(0x100_0000UL, entry.Rip);
        Assert.Equal(0x7000UL, entry.Rsi);
        Assert.Equal(0x9000UL, entry.Cr3);
        Assert.Equal(Code(0x3000), memory.Bytes(0x100_0000, 0x3000));
        Assert.Equal(Code(0x1000), memory.Bytes(0x200_0000, 0x1000));
        Assert.All(memory.Bytes(0x200_1000, 0x7000), b => Assert.Equal(0, b));

        const ulong zp = 0x7000;
        Assert.Equal(0xAA55, memory.U16(zp + 0x1FE));
        Assert.Equal(0x53726448u, memory.U32(zp + 0x202)); // "HdrS"
        Assert.Equal(0x020F, memory.U16(zp + 0x206));
        Assert.Equal(0xFF, memory.U8(zp + 0x210));
        Assert.Equal(0x1000000u, memory.U32(zp + 0x230));
        Assert.Equal("root=/dev/vda", memory.CString(memory.U32(zp + 0x228)));
        Assert.Equal(4, memory.U8(zp + 0x1E8));

        uint ramdisk = memory.U32(zp + 0x218);
        Assert.Equal(5000u, memory.U32(zp + 0x21C));
        Assert.Equal(0u, ramdisk % 4096);
        Assert.True(ramdisk >= 0x200_8000);
        Assert.Equal(File.ReadAllBytes(initrd), memory.Bytes(ramdisk, 5000));
    }

    [Fact]
    public void Elf32WithoutMultibootHeaderIsRefused()
    {
        string kernel = _files.Write("vmlinux32", Elf(false, MachineI386, 0x100000,
            new TestSegment(0x1000, 0x100000, 0x100000, Code(0x100), 0x100)));
        using var memory = Create(64 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, new BootRequest(kernel, null, "", 1)));
        Assert.Contains(kernel, e.Message);
        Assert.Contains("ELF32", e.Message);
    }

    [Fact]
    public void WrongMachineIsRefused()
    {
        string kernel = _files.Write("vmlinux-arm", Vmlinux(0x100_0000, MachineAarch64));
        using var memory = Create(64 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, new BootRequest(kernel, null, "", 1)));
        Assert.Contains(kernel, e.Message);
        Assert.Contains("machine 183", e.Message);
    }

    [Fact]
    public void EntryOutsideTheSegmentsIsRefused()
    {
        string kernel = _files.Write("vmlinux-bad-entry", Vmlinux(0x300_0000));
        using var memory = Create(64 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, new BootRequest(kernel, null, "", 1)));
        Assert.Contains("entry point", e.Message);
    }

    [Fact]
    public void TruncatedProgramHeadersAreRefused()
    {
        string kernel = _files.Write("vmlinux-cut", Vmlinux(0x100_0000).AsSpan(0, 100));
        using var memory = Create(64 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, new BootRequest(kernel, null, "", 1)));
        Assert.Contains(kernel, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void CommandLineLongerThan2047BytesIsRefused()
    {
        string kernel = _files.Write("vmlinux", Vmlinux(0x100_0000));
        using var memory = Create(64 * MiB);
        KernelLoader.Load(memory, new BootRequest(kernel, null, new string('a', 2047), 1));
        var e = Assert.Throws<BootException>(() =>
            KernelLoader.Load(memory, new BootRequest(kernel, null, new string('a', 2048), 1)));
        Assert.Contains("cmdline_size", e.Message);
    }
}
