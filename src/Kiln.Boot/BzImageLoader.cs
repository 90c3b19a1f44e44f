using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Boots a bzImage through its 64-bit entry point: the protected-mode part goes to 1 MiB and the CPU
/// enters at 1 MiB + 0x200 (startup_64 of the decompressor) in long mode.</summary>
internal static class BzImageLoader
{
    private const ulong Entry64Offset = 0x200;

    public static BootEntry Load(GuestMemory memory, BootFile file, ReadOnlySpan<byte> head, BootRequest request)
    {
        var header = SetupHeader.Parse(file, head);
        ulong payloadBytes = (ulong)(file.Length - header.SetupSize);
        ulong kernelEnd = header.ReservedEnd(BootLayout.KernelLoadAddress, payloadBytes);
        ulong ramEnd = E820Map.LowRamEnd(memory);
        if (kernelEnd > ramEnd)
            throw file.Fail($"the kernel needs guest RAM up to 0x{kernelEnd:x} (image plus init_size) but RAM " +
                $"below 4 GiB ends at 0x{ramEnd:x}");
        file.CopyToGuest(memory, (ulong)header.SetupSize, payloadBytes, new GuestAddress(BootLayout.KernelLoadAddress),
            "protected-mode kernel");

        string release = header.KernelRelease.Length > 0 ? header.KernelRelease + " " : "";
        var kernel = new LinuxKernel(
            EntryPoint: BootLayout.KernelLoadAddress + Entry64Offset,
            KernelEnd: kernelEnd,
            CmdlineSize: header.CmdlineSize,
            InitrdAddrMax: header.InitrdAddrMax,
            Description: $"bzImage {release}(protocol {header.ProtocolText})");
        return LinuxBoot.Start(memory, request, file, kernel, BootParams.FromSetupHeader(header.Bytes));
    }
}
