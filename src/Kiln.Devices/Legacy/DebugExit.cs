using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Devices.Legacy;

/// <summary>QEMU's isa-debug-exit: a guest (typically a test kernel) writes a value v to the port and the VMM exits
/// with status <c>(v &lt;&lt; 1) | 1</c>. Register at <see cref="Port"/> with length <see cref="PortCount"/>; a write
/// of any width at any offset in the range counts, as in QEMU.</summary>
/// <remarks>
/// The status is computed in 64 bits and truncated to an int (its low 32 bits), as QEMU's <c>exit()</c> call does.
/// The operating system then keeps only the low 8 bits of a process exit code, so the status the shell sees is
/// <c>((v &amp; 0x7F) &lt;&lt; 1) | 1</c>: always odd (0 → 1, 5 → 11, 0x80 → 1), so a guest can never make the VMM
/// report plain success this way; test harnesses pick a value and treat its odd image as "passed".
/// </remarks>
public sealed class DebugExit : IBusDevice, IStateful
{
    public const ushort DefaultPort = 0xF4;
    public const ulong PortCount = 4;

    private const byte StateVersion = 1;

    private readonly IMachineControl _machine;
    private long _unexpectedAccesses;

    /// <param name="machine">Receives the exit request.</param>
    /// <param name="port">The port it is registered at (only names the state section; registration is the caller's).</param>
    public DebugExit(IMachineControl machine, ushort port = DefaultPort)
    {
        _machine = machine;
        Port = port;
    }

    public ushort Port { get; }

    public string StateId => $"debug-exit@{Port:x}";

    /// <summary>Accesses of width 0 or above 8 bytes, or outside the range; dropped (reads gave all-ones).</summary>
    public long UnexpectedAccesses => Interlocked.Read(ref _unexpectedAccesses);

    /// <summary>The exit status a write of <paramref name="value"/> requests (before the OS's 8-bit truncation).</summary>
    public static int ExitCodeFor(ulong value) => unchecked((int)((value << 1) | 1));

    public void Read(ulong offset, Span<byte> data)
    {
        if (offset >= PortCount || data.Length is 0 or > 8)
        {
            data.Fill(0xFF);
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        // QEMU's device reads as zero.
        data.Clear();
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= PortCount || data.Length is 0 or > 8)
        {
            Interlocked.Increment(ref _unexpectedAccesses);
            return;
        }
        ulong value = 0;
        for (int i = data.Length - 1; i >= 0; i--)
            value = (value << 8) | data[i]; // little-endian, as the port write delivered it
        _machine.RequestExit(ExitCodeFor(value), $"debug-exit: guest wrote 0x{value:x} to port 0x{Port + offset:x}");
    }

    // The device holds no state; the section exists so every device can be saved and checked uniformly.
    public void SaveState(StateWriter writer) => writer.WriteByte(StateVersion);

    public void RestoreState(StateReader reader) => reader.ExpectVersion(StateId, StateVersion);
}
