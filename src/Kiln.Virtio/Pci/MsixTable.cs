using System.Buffers.Binary;
using Kiln.Devices.State;

namespace Kiln.Virtio.Pci;

/// <summary>An MSI-X table (16 bytes per vector: address low/high, data, vector control) and its pending-bit array.
/// Not thread-safe: the owning transport locks around it.</summary>
public sealed class MsixTable
{
    public const int EntrySize = 16;
    private const uint VectorMasked = 1;

    private readonly byte[] _table;
    private readonly ulong[] _pending;

    public MsixTable(int vectors)
    {
        if (vectors is < 1 or > 2048)
            throw new ArgumentOutOfRangeException(nameof(vectors));
        Count = vectors;
        _table = new byte[vectors * EntrySize];
        _pending = new ulong[(vectors + 63) / 64];
        for (int i = 0; i < vectors; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(_table.AsSpan(i * EntrySize + 12), VectorMasked); // masked at reset
    }

    public int Count { get; }
    public int TableBytes => _table.Length;
    public int PbaBytes => _pending.Length * 8;

    public (ulong Address, uint Data, bool Masked) Entry(int vector)
    {
        var e = _table.AsSpan(vector * EntrySize, EntrySize);
        return (BinaryPrimitives.ReadUInt64LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[8..]),
            (BinaryPrimitives.ReadUInt32LittleEndian(e[12..]) & VectorMasked) != 0);
    }

    public bool IsPending(int vector) => (_pending[vector / 64] & (1UL << (vector % 64))) != 0;

    public void SetPending(int vector, bool pending)
    {
        if (pending)
            _pending[vector / 64] |= 1UL << (vector % 64);
        else
            _pending[vector / 64] &= ~(1UL << (vector % 64));
    }

    /// <summary>Dword or qword accesses inside the table; anything else reads as zero / is dropped.</summary>
    public void ReadTable(ulong offset, Span<byte> data)
    {
        if (Valid(offset, data.Length, (ulong)_table.Length))
            _table.AsSpan((int)offset, data.Length).CopyTo(data);
        else
            data.Clear();
    }

    public void WriteTable(ulong offset, ReadOnlySpan<byte> data)
    {
        if (!Valid(offset, data.Length, (ulong)_table.Length))
            return;
        data.CopyTo(_table.AsSpan((int)offset));
        for (int e = (int)offset / EntrySize; e <= ((int)offset + data.Length - 1) / EntrySize; e++)
        {
            var control = _table.AsSpan(e * EntrySize + 12, 4); // reserved control bits read as zero
            BinaryPrimitives.WriteUInt32LittleEndian(control, BinaryPrimitives.ReadUInt32LittleEndian(control) & VectorMasked);
        }
    }

    public void ReadPba(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (!Valid(offset, data.Length, (ulong)PbaBytes))
            return;
        Span<byte> all = stackalloc byte[PbaBytes];
        for (int i = 0; i < _pending.Length; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(all[(i * 8)..], _pending[i]);
        all.Slice((int)offset, data.Length).CopyTo(data);
    }

    private static bool Valid(ulong offset, int length, ulong size) =>
        length is 4 or 8 && offset % 4 == 0 && offset < size && (ulong)length <= size - offset;

    public void Save(StateWriter w)
    {
        w.WriteBytes(_table);
        foreach (ulong p in _pending)
            w.WriteUInt64(p);
    }

    public void Restore(StateReader r)
    {
        r.ReadBytes(_table);
        for (int i = 0; i < _pending.Length; i++)
            _pending[i] = r.ReadUInt64();
    }
}
