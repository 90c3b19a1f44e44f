using System.Buffers.Binary;
using System.Text;
using Kiln.Boot;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

public sealed class BzImageTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static BootRequest Request(string kernel, string? initrd = null, string commandLine = "console=ttyS0",
        int cpus = 1) => new(kernel, initrd, commandLine, cpus);

    [Fact]
    public void RealKernelHeaderDeclaresA64BitCapableModernProtocol()
    {
        byte[] kernel = RealKernel.Bytes;
        Assert.Equal(0xAA55, BinaryPrimitives.ReadUInt16LittleEndian(kernel.AsSpan(0x1FE)));
        Assert.Equal("HdrS", Encoding.ASCII.GetString(kernel, 0x202, 4));
        using var file = BootFileFor(RealKernel.Path);
        var header = SetupHeader.Parse(file, kernel.AsSpan(0, 8192));
        Assert.True(header.Version >= 0x020F, $"protocol {header.ProtocolText}");
        Assert.True(header.Has64BitEntry);
        Assert.True(header.CmdlineSize >= 255);
        Assert.True(header.InitSize > 0);
        Assert.Equal((kernel[0x1F1] == 0 ? 4 : kernel[0x1F1]) + 1, (int)(header.SetupSize / 512));
        Assert.Equal(0x202 + kernel[0x201] - 0x1F1, header.Bytes.Length);
    }

    [Fact]
    public void RealKernelIsPlacedAt1MiBAndEnteredAtItsStartup64()
    {
        byte[] kernel = RealKernel.Bytes;
        using var memory = Create(512 * MiB);
        var entry = KernelLoader.Load(memory, Request(RealKernel.Path));

        int setupSize = ((kernel[0x1F1] == 0 ? 4 : kernel[0x1F1]) + 1) * 512;
        int payload = kernel.Length - setupSize;
        Assert.Equal(kernel.AsSpan(setupSize, 4096).ToArray(), memory.Bytes(0x100000, 4096));
        Assert.Equal(kernel.AsSpan(kernel.Length - 4096).ToArray(), memory.Bytes(0x100000 + (ulong)payload - 4096, 4096));

        Assert.Equal(CpuEntryMode.Long64, entry.Mode);
        Assert.Equal(0x100200UL, entry.Rip);
        Assert.Equal(0x7000UL, entry.Rsi);
        Assert.Equal(0x9000UL, entry.Cr3);
        Assert.StartsWith("bzImage ", entry.Description);
        Assert.Contains("protocol 2.", entry.Description);
    }

    [Fact]
    public void ZeroPageCarriesTheKernelHeaderAndTheLoaderFields()
    {
        byte[] kernel = RealKernel.Bytes;
        using var memory = Create(512 * MiB);
        KernelLoader.Load(memory, Request(RealKernel.Path, commandLine: "console=ttyS0 quiet"));

        const ulong zp = 0x7000;
        int headerEnd = 0x202 + kernel[0x201];
        // Header fields the loader does not own arrive unchanged.
        Assert.Equal(kernel.AsSpan(0x1F1, 0x210 - 0x1F1).ToArray(), memory.Bytes(zp + 0x1F1, 0x210 - 0x1F1));
        Assert.Equal(kernel.AsSpan(0x22C, headerEnd - 0x22C).ToArray(), memory.Bytes(zp + 0x22C, headerEnd - 0x22C));
        Assert.Equal(0, memory.U8(zp + 0x1EF)); // sentinel: a loader that copies only the header leaves it 0

        Assert.Equal(0xFF, memory.U8(zp + 0x210));                     // type_of_loader
        Assert.Equal(0x81, memory.U8(zp + 0x211) & 0x81);              // LOADED_HIGH | CAN_USE_HEAP
        Assert.Equal(0xFE00, memory.U16(zp + 0x224));                  // heap_end_ptr
        Assert.Equal(0xFFFF, memory.U16(zp + 0x1FA));                  // vid_mode
        Assert.Equal(0x20000u, memory.U32(zp + 0x228));                // cmd_line_ptr
        Assert.Equal(0u, memory.U32(zp + 0x0C8));                      // ext_cmd_line_ptr
        Assert.Equal("console=ttyS0 quiet", memory.CString(0x20000));
        Assert.Equal(0u, memory.U32(zp + 0x218));                      // no initrd
        Assert.Equal(0u, memory.U32(zp + 0x21C));
    }

    [Fact]
    public void E820TableDescribes512MiB()
    {
        using var memory = Create(512 * MiB);
        KernelLoader.Load(memory, Request(RealKernel.Path));

        Assert.Equal(4, memory.U8(0x7000 + 0x1E8));
        Assert.Equal((0UL, 0x9FC00UL, 1u), memory.E820At(0x7000 + 0x2D0));
        Assert.Equal((0x9FC00UL, 0x400UL, 2u), memory.E820At(0x7000 + 0x2D0 + 20));
        Assert.Equal((0xF0000UL, 0x10000UL, 2u), memory.E820At(0x7000 + 0x2D0 + 40));
        Assert.Equal((0x100000UL, 512 * MiB - 0x100000, 1u), memory.E820At(0x7000 + 0x2D0 + 60));
        Assert.Equal((0UL, 0UL, 0u), memory.E820At(0x7000 + 0x2D0 + 80));
    }

    [Fact]
    public void E820TableDescribesRamOnBothSidesOfTheHole()
    {
        using var memory = Create(5 * GiB);
        KernelLoader.Load(memory, Request(RealKernel.Path));

        Assert.Equal(5, memory.U8(0x7000 + 0x1E8));
        Assert.Equal((0x100000UL, 3 * GiB - 0x100000, 1u), memory.E820At(0x7000 + 0x2D0 + 60));
        Assert.Equal((4 * GiB, 2 * GiB, 1u), memory.E820At(0x7000 + 0x2D0 + 80));
    }

    [Fact]
    public void CommandLineUpToCmdlineSizeIsAcceptedAndLongerIsRefused()
    {
        byte[] kernel = RealKernel.Bytes;
        int cmdlineSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(kernel.AsSpan(0x238));
        using var memory = Create(512 * MiB);

        string longest = new('x', cmdlineSize);
        KernelLoader.Load(memory, Request(RealKernel.Path, commandLine: longest));
        Assert.Equal(longest, memory.CString(0x20000));

        var e = Assert.Throws<BootException>(() =>
            KernelLoader.Load(memory, Request(RealKernel.Path, commandLine: longest + "x")));
        Assert.Contains(RealKernel.Path, e.Message);
        Assert.Contains("cmdline_size", e.Message);
    }

    [Fact]
    public void InitrdGoesHighPageAlignedAndClearOfTheKernel()
    {
        byte[] kernel = RealKernel.Bytes;
        string initrd = _files.WritePattern("initrd.img", 3 * 1024 * 1024 + 123);
        using var memory = Create(512 * MiB);
        KernelLoader.Load(memory, Request(RealKernel.Path, initrd));

        ulong image = memory.U32(0x7000 + 0x218) | (ulong)memory.U32(0x7000 + 0x0C0) << 32;
        ulong size = memory.U32(0x7000 + 0x21C) | (ulong)memory.U32(0x7000 + 0x0C4) << 32;
        uint initrdAddrMax = BinaryPrimitives.ReadUInt32LittleEndian(kernel.AsSpan(0x22C));
        uint initSize = BinaryPrimitives.ReadUInt32LittleEndian(kernel.AsSpan(0x260));
        ulong prefAddress = BinaryPrimitives.ReadUInt64LittleEndian(kernel.AsSpan(0x258));

        Assert.Equal(3UL * 1024 * 1024 + 123, size);
        Assert.Equal(0UL, image % 4096);
        Assert.True(image + size - 1 <= initrdAddrMax);
        Assert.True(image + size <= 512 * MiB);
        Assert.True(image > 512 * MiB - size - 4096, "as high as possible");
        Assert.True(image >= Math.Max(0x100000UL, prefAddress) + initSize, "above the kernel's init_size");
        Assert.Equal(File.ReadAllBytes(initrd), memory.Bytes(image, (int)size));
    }

    [Fact]
    public void InitrdStaysBelowInitrdAddrMaxWithRamAbove4GiB()
    {
        byte[] kernel = RealKernel.Bytes;
        string initrd = _files.WritePattern("initrd.img", 1024 * 1024);
        using var memory = Create(5 * GiB);
        KernelLoader.Load(memory, Request(RealKernel.Path, initrd));

        ulong image = memory.U32(0x7000 + 0x218) | (ulong)memory.U32(0x7000 + 0x0C0) << 32;
        uint initrdAddrMax = BinaryPrimitives.ReadUInt32LittleEndian(kernel.AsSpan(0x22C));
        Assert.True(image + 1024 * 1024 - 1 <= Math.Min(initrdAddrMax, 3 * GiB - 1));
        Assert.Equal(Math.Min(initrdAddrMax + 1UL, 3 * GiB) - 1024 * 1024, image);
    }

    [Fact]
    public void InitrdThatDoesNotFitIsRefusedNamingTheInitrd()
    {
        string initrd = _files.WriteSparse("huge.img", 60L << 20);
        using var memory = Create(128 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, Request(RealKernel.Path, initrd)));
        Assert.Contains(initrd, e.Message);
        Assert.Contains("does not fit", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void KernelLargerThanGuestRamIsRefused()
    {
        using var memory = Create(64 * MiB); // below pref_address + init_size of a distribution kernel
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, Request(RealKernel.Path)));
        Assert.Contains(RealKernel.Path, e.Message);
        Assert.Contains("init_size", e.Message);
    }

    [Fact]
    public void MissingInitrdIsReportedByName()
    {
        string initrd = _files.PathOf("no-such-initrd");
        using var memory = Create(512 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, Request(RealKernel.Path, initrd)));
        Assert.Contains(initrd, e.Message);
        Assert.Contains("not found", e.Message);
    }

    private static BootFile BootFileFor(string path) => BootFile.Open(path, "kernel");
}
