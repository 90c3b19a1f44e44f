using System.Buffers.Binary;
using System.Text;

namespace Kiln.Devices.State;

/// <summary>Little-endian, length-prefixed binary writer for device and CPU state sections.</summary>
public sealed class StateWriter
{
    private readonly MemoryStream _stream = new();

    public void WriteByte(byte value) => _stream.WriteByte(value);

    public void WriteBool(bool value) => _stream.WriteByte(value ? (byte)1 : (byte)0);

    public void WriteUInt16(ushort value) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, value); _stream.Write(b); }

    public void WriteUInt32(uint value) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, value); _stream.Write(b); }

    public void WriteUInt64(ulong value) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, value); _stream.Write(b); }

    public void WriteInt64(long value) => WriteUInt64((ulong)value);

    /// <summary>A length-prefixed byte string.</summary>
    public void WriteBytes(ReadOnlySpan<byte> data)
    {
        WriteUInt32((uint)data.Length);
        _stream.Write(data);
    }

    public void WriteString(string value) => WriteBytes(Encoding.UTF8.GetBytes(value));

    public byte[] ToArray() => _stream.ToArray();
}
