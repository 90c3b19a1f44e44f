using System.Buffers.Binary;

namespace Kiln.Tests.Boot;

/// <summary>One PT_LOAD of a synthetic ELF: <see cref="Data"/> is stored at file offset <see cref="Offset"/>.</summary>
internal sealed record TestSegment(ulong Offset, ulong VirtualAddress, ulong PhysicalAddress, byte[] Data, ulong MemorySize);

/// <summary>Small synthetic kernels: ELF32/ELF64 executables and multiboot headers, built byte by byte.</summary>
internal static class TestImages
{
    public const uint MultibootMagic = 0x1BADB002;
    public const ushort MachineI386 = 3;
    public const ushort MachineX86_64 = 62;
    public const ushort MachineAarch64 = 183;

    /// <summary>A multiboot header: magic, flags, checksum, then the address fields if any are given.</summary>
    public static byte[] MultibootHeader(uint flags, params uint[] addressFields)
    {
        var header = new byte[12 + 4 * addressFields.Length];
        Put32(header, 0, MultibootMagic);
        Put32(header, 4, flags);
        Put32(header, 8, unchecked(0u - MultibootMagic - flags));
        for (int i = 0; i < addressFields.Length; i++)
            Put32(header, 12 + 4 * i, addressFields[i]);
        return header;
    }

    /// <summary>Bytes that start with <paramref name="prefix"/> and continue with a recognisable pattern.</summary>
    public static byte[] Code(int length, byte[]? prefix = null)
    {
        var code = new byte[length];
        for (int i = 0; i < length; i++)
            code[i] = (byte)(0x90 + i % 13);
        prefix?.CopyTo(code, 0);
        return code;
    }

    public static byte[] Elf(bool is64, ushort machine, ulong entry, params TestSegment[] segments)
    {
        int headerSize = is64 ? 64 : 52;
        int phentsize = is64 ? 56 : 32;
        ulong end = (ulong)(headerSize + phentsize * segments.Length);
        foreach (var s in segments)
            end = Math.Max(end, s.Offset + (ulong)s.Data.Length);
        var file = new byte[end];

        file[0] = 0x7F;
        file[1] = (byte)'E';
        file[2] = (byte)'L';
        file[3] = (byte)'F';
        file[4] = (byte)(is64 ? 2 : 1);
        file[5] = 1; // little-endian
        file[6] = 1; // EV_CURRENT
        Put16(file, 16, 2); // ET_EXEC
        Put16(file, 18, machine);
        Put32(file, 20, 1);
        if (is64)
        {
            Put64(file, 24, entry);
            Put64(file, 32, (ulong)headerSize);
            Put16(file, 52, (ushort)headerSize);
            Put16(file, 54, (ushort)phentsize);
            Put16(file, 56, (ushort)segments.Length);
        }
        else
        {
            Put32(file, 24, (uint)entry);
            Put32(file, 28, (uint)headerSize);
            Put16(file, 40, (ushort)headerSize);
            Put16(file, 42, (ushort)phentsize);
            Put16(file, 44, (ushort)segments.Length);
        }

        for (int i = 0; i < segments.Length; i++)
        {
            var s = segments[i];
            var p = file.AsSpan(headerSize + i * phentsize, phentsize);
            Put32(p, 0, 1); // PT_LOAD
            if (is64)
            {
                Put32(p, 4, 7);
                Put64(p, 8, s.Offset);
                Put64(p, 16, s.VirtualAddress);
                Put64(p, 24, s.PhysicalAddress);
                Put64(p, 32, (ulong)s.Data.Length);
                Put64(p, 40, s.MemorySize);
                Put64(p, 48, 0x1000);
            }
            else
            {
                Put32(p, 4, (uint)s.Offset);
                Put32(p, 8, (uint)s.VirtualAddress);
                Put32(p, 12, (uint)s.PhysicalAddress);
                Put32(p, 16, (uint)s.Data.Length);
                Put32(p, 20, (uint)s.MemorySize);
                Put32(p, 24, 7);
                Put32(p, 28, 0x1000);
            }
            s.Data.CopyTo(file, (int)s.Offset);
        }
        return file;
    }

    public static void Put16(Span<byte> b, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(b[offset..], value);
    public static void Put32(Span<byte> b, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], value);
    public static void Put64(Span<byte> b, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(b[offset..], value);
}
