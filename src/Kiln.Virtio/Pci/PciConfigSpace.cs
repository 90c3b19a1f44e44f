using System.Buffers.Binary;

namespace Kiln.Virtio.Pci;

/// <summary>A type-0 PCI configuration header plus capabilities (256 bytes). Each byte has a write mask: the guest
/// changes only the bits the mask allows, which also gives BAR sizing for free (the size bits are read-only zeros).</summary>
public sealed class PciConfigSpace
{
    public const int Size = 256;
    public const int VendorId = 0x00, DeviceId = 0x02, Command = 0x04, Status = 0x06, Revision = 0x08, ClassCode = 0x09;
    public const int HeaderType = 0x0E, Bar0 = 0x10, SubsystemVendorId = 0x2C, SubsystemId = 0x2E;
    public const int CapabilitiesPointer = 0x34, InterruptLine = 0x3C, InterruptPin = 0x3D;

    public const ushort CommandMemory = 0x0002, CommandBusMaster = 0x0004, CommandIntxDisable = 0x0400;
    public const ushort StatusCapabilities = 0x0010;

    private readonly byte[] _bytes = new byte[Size];
    private readonly byte[] _mask = new byte[Size];
    private readonly ulong[] _barSizes = new ulong[6];

    public PciConfigSpace(ushort vendor, ushort device, uint classCode, byte revision)
    {
        Set16(VendorId, vendor);
        Set16(DeviceId, device);
        _bytes[Revision] = revision;
        _bytes[ClassCode] = (byte)classCode;
        _bytes[ClassCode + 1] = (byte)(classCode >> 8);
        _bytes[ClassCode + 2] = (byte)(classCode >> 16);
        SetMask16(Command, CommandMemory | CommandBusMaster | CommandIntxDisable | 0x0001 | 0x0040 | 0x0100);
        _mask[InterruptLine] = 0xFF;
    }

    public ushort CommandRegister => Get16(Command);

    public void Read(int offset, Span<byte> data) => _bytes.AsSpan(offset, data.Length).CopyTo(data);

    /// <summary>A guest write: only bits in the write mask change.</summary>
    public void Write(int offset, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            int o = offset + i;
            _bytes[o] = (byte)((_bytes[o] & ~_mask[o]) | (data[i] & _mask[o]));
        }
    }

    public byte Get8(int offset) => _bytes[offset];
    public ushort Get16(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(offset));
    public uint Get32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan(offset));
    public void Set8(int offset, byte value) => _bytes[offset] = value;
    public void Set16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan(offset), value);
    public void Set32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_bytes.AsSpan(offset), value);
    public void SetMask8(int offset, byte mask) => _mask[offset] = mask;
    public void SetMask16(int offset, ushort mask) => BinaryPrimitives.WriteUInt16LittleEndian(_mask.AsSpan(offset), mask);
    public void SetMask32(int offset, uint mask) => BinaryPrimitives.WriteUInt32LittleEndian(_mask.AsSpan(offset), mask);

    /// <summary>Declares BARs <paramref name="index"/> and index+1 as one 64-bit non-prefetchable memory BAR of a
    /// power-of-two size (at least 16 bytes, below 4 GiB).</summary>
    public void AddMemoryBar64(int index, ulong size)
    {
        if (size < 16 || size > 1UL << 31 || (size & (size - 1)) != 0 || index > 4)
            throw new ArgumentException($"bad BAR size {size}");
        _barSizes[index] = size;
        Set32(Bar0 + 4 * index, 0x4); // memory, 64-bit
        SetMask32(Bar0 + 4 * index, (uint)~(size - 1) & 0xFFFF_FFF0);
        SetMask32(Bar0 + 4 * index + 4, 0xFFFF_FFFF);
    }

    public ulong BarSize(int index) => _barSizes[index];

    public ulong BarAddress(int index) =>
        (Get32(Bar0 + 4 * index) & 0xFFFF_FFF0UL) | ((ulong)Get32(Bar0 + 4 * index + 4) << 32);

    /// <summary>Places a BAR (the VMM's initial assignment, as firmware would do).</summary>
    public void SetBarAddress(int index, ulong address)
    {
        Set32(Bar0 + 4 * index, ((uint)address & 0xFFFF_FFF0) | (Get32(Bar0 + 4 * index) & 0xF));
        Set32(Bar0 + 4 * index + 4, (uint)(address >> 32));
    }

    /// <summary>Appends a capability at <paramref name="offset"/> after <paramref name="previous"/> (0: first).</summary>
    public void LinkCapability(int previous, int offset, byte id)
    {
        _bytes[offset] = id;
        _bytes[offset + 1] = 0;
        if (previous == 0)
        {
            _bytes[CapabilitiesPointer] = (byte)offset;
            Set16(Status, (ushort)(Get16(Status) | StatusCapabilities));
        }
        else
            _bytes[previous + 1] = (byte)offset;
    }

    public byte[] ToArray() => (byte[])_bytes.Clone();

    /// <summary>Restores saved bytes; read-only bytes must match (the same device), writable ones are taken.</summary>
    public bool TryRestore(ReadOnlySpan<byte> saved)
    {
        if (saved.Length != Size)
            return false;
        for (int i = 0; i < Size; i++)
            if ((saved[i] & ~_mask[i]) != (_bytes[i] & ~_mask[i]))
                return false;
        saved.CopyTo(_bytes);
        return true;
    }
}
