using System.Buffers.Binary;

namespace Kiln.GuestKit;

/// <summary>Gets the compressed kernel (an ELF vmlinux) out of a bzImage through its boot-protocol header
/// (2.08+: payload_offset at 0x248 and payload_length at 0x24c, relative to the protected-mode code that starts after
/// the setup sectors), so it can boot without the decompressor, which is slow where guest ring 0 is emulated.</summary>
public static class BzImagePayload
{
    public static (string Tool, byte[] Compressed) Find(byte[] bzImage)
    {
        if (bzImage.Length < 0x250 || BinaryPrimitives.ReadUInt32LittleEndian(bzImage.AsSpan(0x202)) != 0x53726448 /* "HdrS" */)
            throw new GuestKitException("not a bzImage (no HdrS boot header)");
        if (BinaryPrimitives.ReadUInt16LittleEndian(bzImage.AsSpan(0x206)) < 0x0208)
            throw new GuestKitException("bzImage boot protocol older than 2.08 has no payload fields");
        int setupSects = bzImage[0x1F1] == 0 ? 4 : bzImage[0x1F1];
        long start = (setupSects + 1) * 512L + BinaryPrimitives.ReadUInt32LittleEndian(bzImage.AsSpan(0x248));
        long length = BinaryPrimitives.ReadUInt32LittleEndian(bzImage.AsSpan(0x24C));
        if (start + length > bzImage.Length)
            throw new GuestKitException("bzImage payload lies outside the file");
        byte[] payload = bzImage.AsSpan((int)start, (int)length).ToArray();
        string tool = payload switch
        {
            [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, ..] => "xz",
            [0x1F, 0x8B, ..] => "gzip",
            [0x28, 0xB5, 0x2F, 0xFD, ..] => "zstd",
            [0x02, 0x21, 0x4C, 0x18, ..] => "lz4",
            [0x5D, 0x00, ..] => "lzma",
            [0x7F, 0x45, 0x4C, 0x46, ..] => "cat",
            _ => throw new GuestKitException("bzImage payload has an unknown compression"),
        };
        return (tool, payload);
    }

    /// <summary>Writes the uncompressed vmlinux of BZIMAGE to OUTPUT with the host's decompressor.</summary>
    public static void Extract(string bzImage, string output, CommandRunner runner)
    {
        var (tool, compressed) = Find(File.ReadAllBytes(bzImage));
        string tmp = output + ".payload";
        File.WriteAllBytes(tmp, compressed);
        try
        {
            string decompress = tool == "cat" ? "cat" : tool + " -dc";
            // xz and lzma streams may carry trailing padding that the decompressor reports; the ELF check follows.
            runner.Run($"decompressing the kernel in {bzImage}", "/", "sh", "-c", $"{decompress} \"$0\" > \"$1\" 2>/dev/null; true", tmp, output);
        }
        finally
        {
            File.Delete(tmp);
        }
        byte[] head = new byte[4];
        using (var f = File.OpenRead(output))
            f.ReadExactly(head);
        if (head is not [0x7F, 0x45, 0x4C, 0x46])
            throw new GuestKitException($"the payload of {bzImage} did not decompress to an ELF vmlinux");
    }
}
