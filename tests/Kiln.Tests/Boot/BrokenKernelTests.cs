using System.Buffers.Binary;
using Kiln.Boot;
using static Kiln.Tests.Boot.TestMemory;

namespace Kiln.Tests.Boot;

/// <summary>Files the loader must refuse with one line that names the file and says why.</summary>
public sealed class BrokenKernelTests : IDisposable
{
    private readonly TempFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static BootException Refused(string path, string expectedReason)
    {
        using var memory = Create(256 * MiB);
        var e = Assert.Throws<BootException>(() => KernelLoader.Load(memory, new BootRequest(path, null, "", 1)));
        Assert.Contains(path, e.Message);
        Assert.Contains(expectedReason, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    private string RealKernelCopy(string name, Action<byte[]> corrupt)
    {
        byte[] kernel = RealKernel.Bytes;
        corrupt(kernel);
        return _files.Write(name, kernel);
    }

    [Theory]
    [InlineData(0x100, "not a Linux bzImage, ELF or multiboot kernel")] // cut before the setup header
    [InlineData(0x250, "truncated")]                                     // cut inside the setup header
    public void TruncatedHeaderIsRefused(int length, string reason) =>
        Refused(_files.Write($"cut-{length:x}", RealKernel.Bytes.AsSpan(0, length)), reason);

    [Fact]
    public void KernelCutInHalfIsRefusedAsTruncated()
    {
        byte[] kernel = RealKernel.Bytes;
        Refused(_files.Write("half", kernel.AsSpan(0, kernel.Length / 2)), "truncated");
    }

    [Fact]
    public void BadHeaderMagicIsNotRecognised() =>
        Refused(RealKernelCopy("bad-magic", k => k[0x205] = (byte)'X'), "not a Linux bzImage, ELF or multiboot kernel");

    [Fact]
    public void SetupSectorsPastTheEndOfTheFileAreRefused()
    {
        // A header-only file whose setup_sects claims more setup code than the file holds.
        byte[] head = RealKernel.Bytes.AsSpan(0, 0x2000).ToArray();
        head[0x1F1] = 200;
        Refused(_files.Write("setup-past-end", head), "setup_sects");
    }

    [Fact]
    public void SetupSectorsThatLeaveTooLittleForSyssizeAreRefused() =>
        Refused(RealKernelCopy("setup-255", k => k[0x1F1] = 255), "truncated");

    [Fact]
    public void ProtocolOlderThan206IsRefused() =>
        Refused(RealKernelCopy("v204", k => BinaryPrimitives.WriteUInt16LittleEndian(k.AsSpan(0x206), 0x0204)),
            "boot protocol 2.04 is too old");

    [Fact]
    public void ProtocolWithoutA64BitEntryIsRefused() =>
        Refused(RealKernelCopy("v20b", k => BinaryPrimitives.WriteUInt16LittleEndian(k.AsSpan(0x206), 0x020B)),
            "no 64-bit entry point");

    [Fact]
    public void BzImageWithoutXlfKernel64IsRefused() =>
        Refused(RealKernelCopy("no-xlf64", k => k[0x236] &= 0xFE), "XLF_KERNEL_64");

    [Fact]
    public void GarbageIsNotRecognised()
    {
        var garbage = new byte[65536];
        new Random(42).NextBytes(garbage);
        Refused(_files.Write("garbage", garbage), "not a Linux bzImage, ELF or multiboot kernel");
    }

    [Fact]
    public void EmptyFileIsRefused() => Refused(_files.Write("empty", []), "empty");

    [Fact]
    public void MissingFileIsRefused() => Refused(_files.PathOf("does-not-exist"), "not found");

    [Fact]
    public void DirectoryIsRefused() => Refused(_files.Directory, "is a directory");
}
