using System.Text;

namespace Kiln.Boot.Acpi;

/// <summary>Builds one ACPI table: the 36-byte standard header, the body, then the length and checksum.</summary>
internal sealed class AcpiTableWriter
{
    public const int HeaderSize = 36;
    private readonly List<byte> _bytes = new(256);

    public AcpiTableWriter(string signature, byte revision)
    {
        Put(Encoding.ASCII.GetBytes(signature));
        Put32(0);                                  // length, patched in Finish
        _bytes.Add(revision);
        _bytes.Add(0);                             // checksum, patched in Finish
        Put(Encoding.ASCII.GetBytes("KILN  "));    // OEM id
        Put(Encoding.ASCII.GetBytes("KILNVM  "));  // OEM table id
        Put32(1);                                  // OEM revision
        Put(Encoding.ASCII.GetBytes("KILN"));      // creator id
        Put32(1);                                  // creator revision
    }

    public int Length => _bytes.Count;

    public void Put(ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
            _bytes.Add(b);
    }

    public void Put8(byte v) => _bytes.Add(v);

    public void Put16(ushort v) => Put(BitConverter.GetBytes(v));

    public void Put32(uint v) => Put(BitConverter.GetBytes(v));

    public void Put64(ulong v) => Put(BitConverter.GetBytes(v));

    /// <summary>Generic Address Structure: an I/O-port register of the given width.</summary>
    public void PutIoAddress(ushort port, byte bitWidth, byte accessSize)
    {
        Put8(1);            // address space: system I/O
        Put8(bitWidth);
        Put8(0);            // bit offset
        Put8(accessSize);   // 1 = byte, 2 = word, 3 = dword
        Put64(port);
    }

    public void PadTo(int length)
    {
        while (_bytes.Count < length)
            _bytes.Add(0);
    }

    public byte[] Finish()
    {
        var table = _bytes.ToArray();
        BitConverter.GetBytes((uint)table.Length).CopyTo(table, 4);
        table[9] = Checksum(table);
        return table;
    }

    /// <summary>The byte that makes the sum of all bytes zero (with that byte's slot counted as zero).</summary>
    public static byte Checksum(ReadOnlySpan<byte> data)
    {
        byte sum = 0;
        foreach (byte b in data)
            sum += b;
        return (byte)(0 - sum);
    }
}
