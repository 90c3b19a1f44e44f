using System.Text;

namespace Kiln.GuestKit;

/// <summary>Writes a cpio archive in the SVR4 "newc" format (magic 070701) that the Linux kernel unpacks as an
/// initramfs: a 110-byte ASCII-hex header, the NUL-terminated name, padding to 4 bytes, the data, padding to 4
/// bytes; the archive ends with the entry "TRAILER!!!".</summary>
public sealed class CpioNewcWriter(Stream output)
{
    public const uint TypeDirectory = 0x4000;
    public const uint TypeRegular = 0x8000;
    public const uint TypeSymlink = 0xA000;
    public const uint TypeCharDevice = 0x2000;

    private uint _nextInode = 1;
    private long _written;

    public void AddDirectory(string name, uint permissions = 0x1ED /* 0755 */) =>
        AddEntry(name, TypeDirectory | permissions, [], 0, 0);

    public void AddFile(string name, ReadOnlySpan<byte> data, uint permissions = 0x1A4 /* 0644 */) =>
        AddEntry(name, TypeRegular | permissions, data, 0, 0);

    public void AddSymlink(string name, string target) =>
        AddEntry(name, TypeSymlink | 0x1FF, Encoding.UTF8.GetBytes(target), 0, 0);

    public void AddCharDevice(string name, uint major, uint minor, uint permissions = 0x180 /* 0600 */) =>
        AddEntry(name, TypeCharDevice | permissions, [], major, minor);

    /// <summary>Writes the trailer entry; the writer must not be used after this.</summary>
    public void Finish()
    {
        WriteHeader("TRAILER!!!", 0, 0, 0, 0, 0);
        output.Flush();
    }

    private void AddEntry(string name, uint mode, ReadOnlySpan<byte> data, uint rdevMajor, uint rdevMinor)
    {
        name = name.TrimStart('/');
        if (name.Length == 0 || name == "TRAILER!!!")
            throw new ArgumentException($"invalid cpio entry name '{name}'", nameof(name));
        WriteHeader(name, mode, (uint)data.Length, rdevMajor, rdevMinor, _nextInode++);
        output.Write(data);
        _written += data.Length;
        Pad();
    }

    private void WriteHeader(string name, uint mode, uint fileSize, uint rdevMajor, uint rdevMinor, uint inode)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        uint nlink = (mode & 0xF000) == TypeDirectory ? 2u : 1u;
        var header = new StringBuilder("070701", 110);
        foreach (uint field in new[]
                 {
                     inode, mode, 0u /* uid */, 0u /* gid */, nlink, 0u /* mtime */, fileSize,
                     0u /* dev major */, 0u /* dev minor */, rdevMajor, rdevMinor, (uint)nameBytes.Length + 1, 0u /* check */,
                 })
            header.Append(field.ToString("x8"));
        byte[] headerBytes = Encoding.ASCII.GetBytes(header.ToString());
        output.Write(headerBytes);
        output.Write(nameBytes);
        output.WriteByte(0);
        _written += headerBytes.Length + nameBytes.Length + 1;
        Pad();
    }

    private void Pad()
    {
        while (_written % 4 != 0)
        {
            output.WriteByte(0);
            _written++;
        }
    }
}
