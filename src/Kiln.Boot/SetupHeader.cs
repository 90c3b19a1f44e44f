using System.Text;

namespace Kiln.Boot;

/// <summary>A bzImage's real-mode setup header (x86 boot protocol, Documentation/x86/boot.rst), validated for a
/// 64-bit boot: protocol 2.12 or newer with XLF_KERNEL_64, and a file long enough for what the header promises.</summary>
internal sealed record SetupHeader
{
    public const int Offset = 0x1F1;
    public const ushort BootFlagValue = 0xAA55;
    public const uint HeaderMagicValue = 0x5372_6448; // "HdrS"

    /// <summary>The header never extends past 0x290, where boot_params continues with other fields.</summary>
    private const int MaxEnd = 0x290;
    private const int BootFlagOffset = 0x1FE;
    private const int JumpOffsetByte = 0x201; // the setup's short jump skips exactly the header
    private const int HeaderMagicOffset = 0x202;
    private const int FixedEnd = 0x202; // the header's end is 0x202 + the jump displacement
    private const int InitSizeEnd = 0x264; // last field (2.10+) the 64-bit loader needs
    private const ushort OldestProtocol = 0x0206; // first with cmdline_size
    private const ushort FirstWith64BitEntry = 0x020C; // xloadflags appeared in 2.12
    private const ushort XlfKernel64 = 1 << 0;
    public const ushort XlfCanBeLoadedAbove4G = 1 << 1;

    public required int SetupSectors { get; init; }
    public required ushort Version { get; init; }
    public required uint SysSize { get; init; }
    public required byte LoadFlags { get; init; }
    public required uint InitrdAddrMax { get; init; }
    public required uint KernelAlignment { get; init; }
    public required bool RelocatableKernel { get; init; }
    public required ushort XLoadFlags { get; init; }
    public required uint CmdlineSize { get; init; }
    public required uint PayloadOffset { get; init; }
    public required uint PayloadLength { get; init; }
    public required ulong PrefAddress { get; init; }
    public required uint InitSize { get; init; }

    /// <summary>The header bytes [0x1F1, end) as they appear in the file, for the zero page.</summary>
    public required byte[] Bytes { get; init; }

    /// <summary>The kernel release from the kernel_version string, or "" if the image has none.</summary>
    public string KernelRelease { get; init; } = "";

    /// <summary>Where the protected-mode kernel starts in the file: after the boot sector and the setup sectors.</summary>
    public long SetupSize => (SetupSectors + 1) * 512L;

    public string ProtocolText => $"{Version >> 8}.{Version & 0xFF:d2}";

    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        head.Length >= HeaderMagicOffset + 4
        && LittleEndian.U16(head, BootFlagOffset) == BootFlagValue
        && LittleEndian.U32(head, HeaderMagicOffset) == HeaderMagicValue;

    /// <summary>Parses and validates the header of a file that <see cref="HasSignature"/> accepted; <paramref name="head"/>
    /// is the start of the file (at least through the header if the file is that long).</summary>
    public static SetupHeader Parse(BootFile file, ReadOnlySpan<byte> head)
    {
        if (head.Length < 0x208)
            throw file.Truncated("setup header", 0x208);
        ushort version = LittleEndian.U16(head, 0x206);
        string protocol = $"{version >> 8}.{version & 0xFF:d2}";
        if (version < OldestProtocol)
            throw file.Fail($"boot protocol {protocol} is too old (Kiln needs 2.06 or newer)");
        int end = FixedEnd + head[JumpOffsetByte];
        if (head.Length < end)
            throw file.Truncated("setup header", (ulong)end);
        if ((head[0x211] & BootParams.LoadedHigh) == 0)
            throw file.Fail("is a zImage (not loaded high); only bzImage kernels are supported");
        if (version < FirstWith64BitEntry)
            throw file.Fail($"boot protocol {protocol} has no 64-bit entry point (needs 2.12 or newer with XLF_KERNEL_64)");
        if (end < InitSizeEnd)
            throw file.Fail($"setup header ends at 0x{end:x}, too short for boot protocol {protocol}");
        ushort xloadflags = LittleEndian.U16(head, 0x236);
        if ((xloadflags & XlfKernel64) == 0)
            throw file.Fail("bzImage has no 64-bit entry point (XLF_KERNEL_64 is not set)");

        int setupSectors = head[Offset] == 0 ? 4 : head[Offset]; // 0 means 4 for ancient compatibility
        var header = new SetupHeader
        {
            SetupSectors = setupSectors,
            Version = version,
            SysSize = LittleEndian.U32(head, 0x1F4),
            LoadFlags = head[0x211],
            InitrdAddrMax = LittleEndian.U32(head, 0x22C),
            KernelAlignment = LittleEndian.U32(head, 0x230),
            RelocatableKernel = head[0x234] != 0,
            XLoadFlags = xloadflags,
            CmdlineSize = LittleEndian.U32(head, 0x238),
            PayloadOffset = LittleEndian.U32(head, 0x248),
            PayloadLength = LittleEndian.U32(head, 0x24C),
            PrefAddress = LittleEndian.U64(head, 0x258),
            InitSize = LittleEndian.U32(head, 0x260),
            Bytes = head[Offset..Math.Min(end, MaxEnd)].ToArray(),
        };
        header.CheckFileLength(file);
        return header with { KernelRelease = ReadKernelRelease(file, head, header.SetupSize) };
    }

    /// <summary>The file must hold the setup sectors, the protected-mode part syssize promises and the payload.</summary>
    private void CheckFileLength(BootFile file)
    {
        if (SetupSize >= file.Length)
            throw file.Fail($"setup_sects ({SetupSectors}) puts the kernel at offset {SetupSize:#,0}, " +
                $"past the end of the {file.Length:#,0}-byte file");
        ulong protectedModeEnd = (ulong)SetupSize + SysSize * 16UL;
        if (protectedModeEnd > (ulong)file.Length)
            throw file.Truncated("protected-mode kernel (setup_sects + syssize)", protectedModeEnd);
        ulong payloadEnd = (ulong)SetupSize + PayloadOffset + PayloadLength;
        if (PayloadLength != 0 && payloadEnd > (ulong)file.Length)
            throw file.Truncated("compressed payload (payload_offset + payload_length)", payloadEnd);
    }

    /// <summary>The first word of the kernel_version string (e.g. "6.1.0-56-amd64"), for log messages only.</summary>
    private static string ReadKernelRelease(BootFile file, ReadOnlySpan<byte> head, long setupSize)
    {
        ushort pointer = LittleEndian.U16(head, 0x20E);
        long start = pointer + 0x200L; // relative to the start of the setup code
        if (pointer == 0 || start >= setupSize)
            return "";
        var text = new byte[(int)Math.Min(64, setupSize - start)];
        file.ReadExactly(start, text, "kernel version string");
        int length = text.AsSpan().IndexOfAny((byte)0, (byte)' ');
        string release = Encoding.ASCII.GetString(text, 0, length < 0 ? text.Length : length);
        return release.All(c => c > ' ' && c < 0x7F) ? release : "";
    }

    /// <summary>The end of the memory the kernel may use before it reads the memory map: the loaded file, and
    /// init_size bytes from where the decompressor will run. A relocatable kernel loaded at
    /// <paramref name="loadAddress"/> runs at that address rounded up to kernel_alignment, but never below
    /// pref_address (LOAD_PHYSICAL_ADDR); a non-relocatable one always runs at pref_address.</summary>
    public ulong ReservedEnd(ulong loadAddress, ulong payloadBytes)
    {
        ulong alignment = KernelAlignment != 0 && (KernelAlignment & (KernelAlignment - 1)) == 0 ? KernelAlignment : 1;
        ulong runAddress = RelocatableKernel ? Math.Max(Align.Up(loadAddress, alignment), PrefAddress) : PrefAddress;
        runAddress = Math.Max(runAddress, loadAddress);
        return Math.Max(checked(loadAddress + payloadBytes), checked(runAddress + InitSize));
    }

    public bool Has64BitEntry => (XLoadFlags & XlfKernel64) != 0;
}
