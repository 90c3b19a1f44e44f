using Kiln.Devices;
using Kiln.Devices.Bus;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;

namespace Kiln.Tests.Devices;

/// <summary>Records every level the device drives, so tests can check it only ever drives changes.</summary>
internal sealed class FakeInterruptLine : IInterruptLine
{
    private readonly Lock _lock = new();
    private readonly List<bool> _calls = [];

    public bool Level { get; private set; }

    public int RepeatedLevels { get; private set; }

    public IReadOnlyList<bool> Calls
    {
        get
        {
            lock (_lock)
                return [.. _calls];
        }
    }

    public void Set(bool high)
    {
        lock (_lock)
        {
            if (high == Level)
                RepeatedLevels++;
            Level = high;
            _calls.Add(high);
        }
    }
}

internal sealed class FakeMachineControl : IMachineControl
{
    private readonly Lock _lock = new();

    public List<string> Resets { get; } = [];
    public List<(int Code, string Reason)> Exits { get; } = [];

    public void RequestReset(string reason)
    {
        lock (_lock)
            Resets.Add(reason);
    }

    public void RequestExit(int exitCode, string reason)
    {
        lock (_lock)
            Exits.Add((exitCode, reason));
    }

    public List<string> PowerOffs { get; } = [];

    public void RequestPowerOff(string reason)
    {
        lock (_lock)
            PowerOffs.Add(reason);
    }
}

internal sealed class FakeSerialOutput : ISerialOutput
{
    public List<byte> Bytes { get; } = [];

    public void Write(byte b) => Bytes.Add(b);
}

internal static class Port
{
    public static byte In(IBusDevice device, ulong offset)
    {
        Span<byte> b = stackalloc byte[1];
        device.Read(offset, b);
        return b[0];
    }

    public static void Out(IBusDevice device, ulong offset, byte value) => device.Write(offset, [value]);

    public static byte[] Save(IStateful device)
    {
        var writer = new StateWriter();
        device.SaveState(writer);
        return writer.ToArray();
    }

    public static void Restore(IStateful device, byte[] blob) => device.RestoreState(new StateReader(blob));
}
