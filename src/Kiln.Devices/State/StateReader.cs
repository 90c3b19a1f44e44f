using System.Buffers.Binary;
using System.Text;

namespace Kiln.Devices.State;

/// <summary>Reads what <see cref="StateWriter"/> wrote; any truncation or bad length is a <see cref="StateFormatException"/>.</summary>
public sealed class StateReader(ReadOnlyMemory<byte> data)
{
    private int _position;

    public bool AtEnd => _position == data.Length;

    public byte ReadByte() => Take(1)[0];

    public bool ReadBool() => ReadByte() switch
    {
        0 => false,
        1 => true,
        var b => throw new StateFormatException($"bad boolean {b} at offset {_position - 1}"),
    };

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public long ReadInt64() => (long)ReadUInt64();

    public byte[] ReadBytes() => Take(ReadLength()).ToArray();

    /// <summary>Reads a byte string that must have exactly the given length (fixed-size registers, tables).</summary>
    public void ReadBytes(Span<byte> destination)
    {
        uint length = ReadUInt32();
        if (length != destination.Length)
            throw new StateFormatException($"expected {destination.Length} bytes, found {length}");
        Take(destination.Length).CopyTo(destination);
    }

    public string ReadString() => Encoding.UTF8.GetString(Take(ReadLength()));

    /// <summary>A length prefix; one too large for any buffer is corruption, not an overflow.</summary>
    private int ReadLength()
    {
        uint length = ReadUInt32();
        if (length > int.MaxValue)
            throw new StateFormatException($"bad length {length} at offset {_position - 4}");
        return (int)length;
    }

    /// <summary>Checks a section's version tag; a mismatch is refused rather than misread.</summary>
    public void ExpectVersion(string section, byte supported)
    {
        byte version = ReadByte();
        if (version != supported)
            throw new StateFormatException($"{section}: state version {version} is not supported (expected {supported})");
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > data.Length - _position)
            throw new StateFormatException($"state truncated: need {count} bytes at offset {_position}, have {data.Length - _position}");
        var span = data.Span.Slice(_position, count);
        _position += count;
        return span;
    }
}

public sealed class StateFormatException(string message) : KilnException(message);
