using Iced.Intel;
using Kiln.Kvm;

namespace Kiln.Vmm.Emulation;

/// <summary>Fetches and decodes the instruction at CS:RIP. Reads up to 15 bytes page by page through the guest page
/// tables (an instruction may cross a page boundary), stopping early at a page that is not mapped or not RAM;
/// a decode that then runs out of bytes is a fetch failure, not an exception.</summary>
internal static class InstructionFetcher
{
    public const int MaxLength = 15;

    public static int Bitness(in KvmSregs sregs)
    {
        bool longMode = (sregs.Efer & (1UL << 10)) != 0; // EFER.LMA
        if (longMode && sregs.Cs.L != 0)
            return 64;
        return sregs.Cs.Db != 0 ? 32 : 16;
    }

    /// <summary>Returns the decoded instruction, or throws <see cref="NotEmulatedException"/> with a reason.</summary>
    public static Instruction Fetch(IVcpuState state, in KvmRegs regs, in KvmSregs sregs, int bitness, out byte[] bytes)
    {
        ulong linear = bitness == 64 ? regs.Rip : (sregs.Cs.Base + regs.Rip) & 0xFFFF_FFFF;
        bytes = ReadBytes(state, linear, bitness, out string? stopReason);
        if (bytes.Length == 0)
            throw new NotEmulatedException($"cannot fetch the instruction at linear 0x{linear:x}: {stopReason}");
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(bytes), regs.Rip, DecoderOptions.None);
        decoder.Decode(out var instruction);
        if (decoder.LastError == DecoderError.NoMoreBytes)
            throw new NotEmulatedException(
                $"instruction at linear 0x{linear:x} is cut short after {bytes.Length} bytes ({Hex(bytes)}): {stopReason}");
        if (instruction.IsInvalid || decoder.LastError != DecoderError.None)
            throw new NotEmulatedException($"undecodable bytes at linear 0x{linear:x}: {Hex(bytes)}");
        bytes = bytes[..instruction.Length];
        return instruction;
    }

    private static byte[] ReadBytes(IVcpuState state, ulong linear, int bitness, out string? stopReason)
    {
        var buffer = new byte[MaxLength];
        int done = 0;
        stopReason = null;
        while (done < MaxLength)
        {
            ulong address = linear + (ulong)done;
            if (bitness != 64)
                address &= 0xFFFF_FFFF;
            int chunk = (int)Math.Min((ulong)(MaxLength - done), 4096 - (address & 4095));
            var t = state.Translate(address);
            if (!t.Valid)
            {
                stopReason = $"linear 0x{address:x} is not mapped";
                break;
            }
            if (!state.TryReadPhysical(t.Physical, buffer.AsSpan(done, chunk)))
            {
                // The page may end in RAM partway (e.g. the last RAM page); take what is readable byte by byte.
                int got = 0;
                while (got < chunk && state.TryReadPhysical(t.Physical + (ulong)got, buffer.AsSpan(done + got, 1)))
                    got++;
                done += got;
                stopReason = $"guest-physical 0x{t.Physical + (ulong)got:x} is outside RAM";
                break;
            }
            done += chunk;
        }
        return buffer[..done];
    }

    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes).ToLowerInvariant() switch
    {
        var s => string.Join(' ', Enumerable.Range(0, s.Length / 2).Select(i => s.Substring(i * 2, 2))),
    };
}
