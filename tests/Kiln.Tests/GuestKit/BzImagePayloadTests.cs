using System.Buffers.Binary;
using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class BzImagePayloadTests
{
    private static byte[] FakeBzImage(byte[] payload, ushort protocol = 0x020F)
    {
        var image = new byte[1024 + 16 + payload.Length + 8];
        image[0x1F1] = 1; // one setup sector: protected-mode code at 2 * 512
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x202), 0x53726448);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(0x206), protocol);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x248), 16);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x24C), (uint)payload.Length);
        payload.CopyTo(image, 1024 + 16);
        return image;
    }

    [Fact]
    public void FindsThePayloadAndItsCompression()
    {
        byte[] xz = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1, 2, 3];
        var (tool, payload) = BzImagePayload.Find(FakeBzImage(xz));
        Assert.Equal("xz", tool);
        Assert.Equal(xz, payload);
        Assert.Equal("gzip", BzImagePayload.Find(FakeBzImage([0x1F, 0x8B, 8, 0])).Tool);
    }

    [Fact]
    public void RejectsNonBzImagesAndOldProtocols()
    {
        Assert.Throws<GuestKitException>(() => BzImagePayload.Find(new byte[4096]));
        Assert.Throws<GuestKitException>(() => BzImagePayload.Find(FakeBzImage([0x1F, 0x8B], protocol: 0x0206)));
        Assert.Throws<GuestKitException>(() => BzImagePayload.Find(FakeBzImage([9, 9, 9, 9])));
    }
}
