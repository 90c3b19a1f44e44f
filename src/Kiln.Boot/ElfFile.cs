namespace Kiln.Boot;

internal enum ElfClass : byte
{
    Elf32 = 1,
    Elf64 = 2,
}

/// <summary>One program header, widened to 64 bits whatever the file's class.</summary>
internal readonly record struct ElfSegment(uint Type, ulong Offset, ulong VirtualAddress, ulong PhysicalAddress,
    ulong FileSize, ulong MemorySize)
{
    public const uint Load = 1; // PT_LOAD
}

/// <summary>The ELF header and program headers of an executable (ELF32 or ELF64, little-endian), read with
/// every offset checked against the file. Sections are irrelevant to loading and are not read.</summary>
internal sealed record ElfFile(ElfClass Class, ushort Machine, ulong Entry, IReadOnlyList<ElfSegment> Segments)
{
    public const ushort MachineI386 = 3;
    public const ushort MachineX86_64 = 62;

    private const int IdentSize = 16;
    private const ushort TypeExecutable = 2;
    private const int MaxProgramHeaders = 1024;

    public IEnumerable<ElfSegment> LoadSegments => Segments.Where(s => s.Type == ElfSegment.Load && s.MemorySize > 0);

    public string ClassText => Class == ElfClass.Elf64 ? "ELF64" : "ELF32";

    public static bool HasMagic(ReadOnlySpan<byte> head) =>
        head.Length >= 4 && head[0] == 0x7F && head[1] == (byte)'E' && head[2] == (byte)'L' && head[3] == (byte)'F';

    public static ElfFile Parse(BootFile file)
    {
        Span<byte> h = stackalloc byte[64];
        file.ReadExactly(0, h[..IdentSize], "ELF identification");
        var elfClass = (ElfClass)h[4];
        if (elfClass is not (ElfClass.Elf32 or ElfClass.Elf64))
            throw file.Fail($"ELF class {h[4]} is neither ELF32 nor ELF64");
        if (h[5] != 1)
            throw file.Fail("ELF file is not little-endian");
        bool is64 = elfClass == ElfClass.Elf64;
        h = h[..(is64 ? 64 : 52)];
        file.ReadExactly(0, h, "ELF header");

        ushort type = LittleEndian.U16(h, 16);
        ushort machine = LittleEndian.U16(h, 18);
        if (type != TypeExecutable)
            throw file.Fail($"ELF type {type} is not an executable (ET_EXEC)");
        ulong entry = is64 ? LittleEndian.U64(h, 24) : LittleEndian.U32(h, 24);
        ulong phoff = is64 ? LittleEndian.U64(h, 32) : LittleEndian.U32(h, 28);
        int phentsize = LittleEndian.U16(h, is64 ? 54 : 42);
        int phnum = LittleEndian.U16(h, is64 ? 56 : 44);
        int minimumEntry = is64 ? 56 : 32;
        if (phnum == 0)
            throw file.Fail("ELF file has no program headers");
        if (phnum > MaxProgramHeaders || phentsize < minimumEntry)
            throw file.Fail($"ELF program header table is malformed ({phnum} entries of {phentsize} bytes)");
        ulong tableSize = (ulong)phnum * (ulong)phentsize;
        if (phoff > (ulong)file.Length || tableSize > (ulong)file.Length - phoff)
            throw file.Truncated("ELF program header table", phoff + tableSize);

        var table = new byte[tableSize];
        file.ReadExactly((long)phoff, table, "ELF program header table");
        var segments = new ElfSegment[phnum];
        for (int i = 0; i < phnum; i++)
        {
            var p = table.AsSpan(i * phentsize, minimumEntry);
            segments[i] = is64
                ? new(LittleEndian.U32(p, 0), LittleEndian.U64(p, 8), LittleEndian.U64(p, 16), LittleEndian.U64(p, 24),
                    LittleEndian.U64(p, 32), LittleEndian.U64(p, 40))
                : new(LittleEndian.U32(p, 0), LittleEndian.U32(p, 4), LittleEndian.U32(p, 8), LittleEndian.U32(p, 12),
                    LittleEndian.U32(p, 16), LittleEndian.U32(p, 20));
        }
        return new ElfFile(elfClass, machine, entry, segments);
    }
}
