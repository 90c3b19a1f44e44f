using System.Text;

namespace Kiln.Boot.Acpi;

/// <summary>The few AML encodings Kiln's DSDT needs (ACPI 6.x, chapter 20), written by hand so that no ACPI
/// compiler is needed at run time. Each method returns the encoded bytes of one term.</summary>
internal static class Aml
{
    private const byte NameOp = 0x08, PackageOp = 0x12, BufferOp = 0x11, ExtOpPrefix = 0x5B, DeviceOp = 0x82;
    private const byte ZeroOp = 0x00, OneOp = 0x01, BytePrefix = 0x0A, WordPrefix = 0x0B, DWordPrefix = 0x0C;

    /// <summary>A four-character name segment, padded with '_' as AML requires.</summary>
    public static byte[] NameSeg(string name)
    {
        if (name.Length is 0 or > 4)
            throw new ArgumentException($"AML name segment '{name}' must be 1 to 4 characters");
        return Encoding.ASCII.GetBytes(name.PadRight(4, '_'));
    }

    /// <summary>The smallest encoding of an integer constant.</summary>
    public static byte[] Integer(ulong value) => value switch
    {
        0 => [ZeroOp],
        1 => [OneOp],
        <= 0xFF => [BytePrefix, (byte)value],
        <= 0xFFFF => [WordPrefix, .. BitConverter.GetBytes((ushort)value)],
        <= 0xFFFF_FFFF => [DWordPrefix, .. BitConverter.GetBytes((uint)value)],
        _ => [0x0E, .. BitConverter.GetBytes(value)], // QWordPrefix
    };

    /// <summary>A compressed EISA id such as "PNP0A03", as _HID and _CID expect.</summary>
    public static byte[] EisaId(string id)
    {
        if (id.Length != 7)
            throw new ArgumentException($"EISA id '{id}' must be 3 letters and 4 hex digits");
        int vendor = ((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@');
        ushort product = Convert.ToUInt16(id[3..], 16);
        // Stored big-endian: vendor then product.
        return [DWordPrefix, (byte)(vendor >> 8), (byte)vendor, (byte)(product >> 8), (byte)product];
    }

    public static byte[] Name(string name, byte[] value) => [NameOp, .. NameSeg(name), .. value];

    public static byte[] Package(IReadOnlyList<byte[]> elements)
    {
        if (elements.Count > 255)
            throw new ArgumentException("an AML package holds at most 255 elements here");
        byte[] body = [(byte)elements.Count, .. elements.SelectMany(e => e)];
        return [PackageOp, .. PkgLength(body.Length), .. body];
    }

    public static byte[] Buffer(byte[] contents)
    {
        byte[] body = [.. Integer((ulong)contents.Length), .. contents];
        return [BufferOp, .. PkgLength(body.Length), .. body];
    }

    public static byte[] Device(string name, IEnumerable<byte[]> terms)
    {
        byte[] body = [.. NameSeg(name), .. terms.SelectMany(t => t)];
        return [ExtOpPrefix, DeviceOp, .. PkgLength(body.Length), .. body];
    }

    /// <summary>PkgLength: the length of what follows plus the length field itself, in 1 to 4 bytes.</summary>
    public static byte[] PkgLength(int bodyLength)
    {
        if (bodyLength + 1 < 0x40)
            return [(byte)(bodyLength + 1)];
        for (int extra = 1; extra <= 3; extra++)
        {
            int total = bodyLength + 1 + extra;
            if (total < 1 << (4 + 8 * extra))
            {
                var bytes = new byte[1 + extra];
                bytes[0] = (byte)((extra << 6) | (total & 0x0F));
                for (int i = 1; i <= extra; i++)
                    bytes[i] = (byte)(total >> (4 + 8 * (i - 1)));
                return bytes;
            }
        }
        throw new ArgumentException($"AML package of {bodyLength} bytes is too long");
    }
}
