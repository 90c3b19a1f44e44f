using System.Buffers.Binary;
using System.Text;
using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class ModuleSignatureTests
{
    private static readonly byte[] Marker = Encoding.ASCII.GetBytes("~Module signature appended~\n");

    private static byte[] Signed(byte[] module, int signatureLength, uint? declaredLength = null)
    {
        var info = new byte[12];
        info[2] = 2; // PKEY_ID_PKCS7
        BinaryPrimitives.WriteUInt32BigEndian(info.AsSpan(8), declaredLength ?? (uint)signatureLength);
        return [.. module, .. new byte[signatureLength].Select((_, i) => (byte)(0xA0 + i)), .. info, .. Marker];
    }

    [Fact]
    public void StripsSignatureInfoAndMarker()
    {
        byte[] module = [0x7F, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3];
        Assert.Equal(module, ModuleSignature.Strip(Signed(module, 40)));
    }

    [Fact]
    public void UnsignedModuleIsReturnedAsItIs()
    {
        byte[] module = [0x7F, (byte)'E', (byte)'L', (byte)'F', 9];
        Assert.Same(module, ModuleSignature.Strip(module));
        Assert.Empty(ModuleSignature.Strip([]));
    }

    [Fact]
    public void SignatureLongerThanTheFileIsAnError()
    {
        var e = Assert.Throws<GuestKitException>(() => ModuleSignature.Strip(Signed([1, 2, 3], 10, declaredLength: 0xFFFF_FFFF)));
        Assert.Contains("longer than the module", e.Message);
        Assert.Throws<GuestKitException>(() => ModuleSignature.Strip(Marker));
    }
}
