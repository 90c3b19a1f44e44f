using System.Buffers.Binary;
using Kiln.Devices.Bus;
using Kiln.Devices.State;

namespace Kiln.Virtio.Pci;

/// <summary>A PCI host bridge with configuration mechanism #1 and one MMIO window for every function's memory BAR.
/// <para>Ports: register <see cref="AddressPort"/> at 0xCF8 with length 1 and <see cref="DataPort"/> at 0xCFC with
/// length 4 (see <see cref="RegisterPorts"/>). The IoBus hands a 32-bit access at 0xCF8 to the device registered
/// there whatever its length, so 0xCF9 stays free for the reset-control register and byte accesses there keep
/// resetting the machine.</para>
/// <para>MMIO: register <see cref="MmioWindow"/> once over [<see cref="WindowBase"/>, +<see cref="WindowSize"/>);
/// BARs are assigned inside it at <see cref="Attach"/> (as firmware would), the guest may move them, and each access
/// is dispatched to whichever function decodes it at that moment, so the bus registration never changes.</para></summary>
public sealed class PciHostBridge : IStateful
{
    private const byte StateVersion = 1;

    public const ushort ConfigAddressPortNumber = 0xCF8;
    public const ushort ConfigDataPortNumber = 0xCFC;
    public const ulong DefaultWindowBase = 0xE000_0000;
    public const ulong DefaultWindowSize = 0x1000_0000;
    public const int MaxDevices = 32;

    private readonly PciFunction?[] _slots = new PciFunction?[MaxDevices];
    private readonly Lock _lock = new();
    private uint _address;
    private ulong _nextBar;

    public PciHostBridge(ulong windowBase = DefaultWindowBase, ulong windowSize = DefaultWindowSize)
    {
        WindowBase = windowBase;
        WindowSize = windowSize;
        _nextBar = windowBase;
        _slots[0] = new HostBridgeFunction();
        AddressPort = new AddressRegister(this);
        DataPort = new DataRegister(this);
        MmioWindow = new Window(this);
    }

    public ulong WindowBase { get; }
    public ulong WindowSize { get; }
    public IBusDevice AddressPort { get; }
    public IBusDevice DataPort { get; }
    public IBusDevice MmioWindow { get; }

    public IEnumerable<(int Slot, PciFunction Function)> Functions =>
        _slots.Select((f, i) => (i, f)).Where(x => x.f is not null).Select(x => (x.i, x.f!));

    /// <summary>Registers the two configuration ports on the port bus and the window on the MMIO bus.</summary>
    public void RegisterPorts(IoBus pio, IoBus mmio)
    {
        pio.Register(ConfigAddressPortNumber, 1, AddressPort, "PCI config address");
        pio.Register(ConfigDataPortNumber, 4, DataPort, "PCI config data");
        mmio.Register(WindowBase, WindowSize, MmioWindow, "PCI MMIO window");
    }

    /// <summary>Puts a function in the next free slot (00:01.0 onwards) and places its memory BAR in the window.
    /// Returns the slot number.</summary>
    public int Attach(PciFunction function)
    {
        lock (_lock)
        {
            int slot = Array.IndexOf(_slots, null);
            if (slot < 0)
                throw new InvalidOperationException("PCI bus 0 is full");
            if (function.MemoryBar >= 0)
            {
                ulong size = function.Config.BarSize(function.MemoryBar);
                ulong address = (_nextBar + size - 1) & ~(size - 1);
                if (address + size > WindowBase + WindowSize)
                    throw new InvalidOperationException("PCI MMIO window is full");
                function.Config.SetBarAddress(function.MemoryBar, address);
                _nextBar = address + size;
            }
            _slots[slot] = function;
            function.BridgeWindow = (WindowBase, WindowSize);
            if (function is VirtioPciTransport transport)
                transport.Slot = slot;
            return slot;
        }
    }

    public string StateId => "pci-host-bridge";

    /// <summary>The CONFIG_ADDRESS latch (a guest saved between its 0xCF8 write and 0xCFC access must find it
    /// again) and the host bridge function's own configuration space. The attached functions save themselves.</summary>
    public void SaveState(StateWriter writer)
    {
        writer.WriteByte(StateVersion);
        lock (_lock)
            writer.WriteUInt32(_address);
        writer.WriteBytes(_slots[0]!.Config.ToArray());
    }

    public void RestoreState(StateReader reader)
    {
        reader.ExpectVersion(StateId, StateVersion);
        uint address = reader.ReadUInt32();
        if ((address & ~0x80FF_FFFCu) != 0)
            throw new StateFormatException($"{StateId}: bad CONFIG_ADDRESS 0x{address:x8}");
        if (!_slots[0]!.Config.TryRestore(reader.ReadBytes()))
            throw new StateFormatException($"{StateId}: host bridge configuration space is from a different device");
        lock (_lock)
            _address = address;
    }

    private PciFunction? Selected(out int register)
    {
        uint a;
        lock (_lock)
            a = _address;
        register = (int)(a & 0xFC);
        int bus = (int)(a >> 16) & 0xFF, device = (int)(a >> 11) & 0x1F, function = (int)(a >> 8) & 0x7;
        if ((a & 0x8000_0000) == 0 || bus != 0 || function != 0)
            return null;
        return _slots[device];
    }

    private sealed class AddressRegister(PciHostBridge bridge) : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data)
        {
            if (offset != 0 || data.Length != 4)
            {
                data.Fill(0xFF);
                return;
            }
            lock (bridge._lock)
                BinaryPrimitives.WriteUInt32LittleEndian(data, bridge._address);
        }

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
            if (offset != 0 || data.Length != 4)
                return; // e.g. Linux's probe writes a byte at 0xCFB
            lock (bridge._lock)
                bridge._address = BinaryPrimitives.ReadUInt32LittleEndian(data) & 0x80FF_FFFC;
        }
    }

    private sealed class DataRegister(PciHostBridge bridge) : IBusDevice, IAccessFaultHandler
    {
        public void OnAccessFault(ulong offset, Exception fault) => bridge.Selected(out _)?.OnAccessFault(fault);

        public void Read(ulong offset, Span<byte> data)
        {
            var function = bridge.Selected(out int register);
            if (function is null || !Fits(offset, data.Length))
                data.Fill(0xFF);
            else
                function.ReadConfig(register + (int)offset, data);
        }

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
            var function = bridge.Selected(out int register);
            if (function is not null && Fits(offset, data.Length))
                function.WriteConfig(register + (int)offset, data);
        }

        private static bool Fits(ulong offset, int length) =>
            length is 1 or 2 or 4 && offset < 4 && (int)offset + length <= 4 && (int)offset % length == 0;
    }

    private sealed class Window(PciHostBridge bridge) : IBusDevice, IAccessFaultHandler
    {
        public void OnAccessFault(ulong offset, Exception fault)
        {
            if (Find(offset, out var function, out _))
                function.OnAccessFault(fault);
        }

        public void Read(ulong offset, Span<byte> data)
        {
            if (Find(offset, out var function, out ulong barOffset))
                function.ReadBar(barOffset, data);
            else
                data.Fill(0xFF);
        }

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
            if (Find(offset, out var function, out ulong barOffset))
                function.WriteBar(barOffset, data);
        }

        private bool Find(ulong offset, out PciFunction function, out ulong barOffset)
        {
            ulong address = bridge.WindowBase + offset;
            foreach (var f in bridge._slots)
            {
                if (f is not null && f.TryDecode(address, out barOffset))
                {
                    function = f;
                    return true;
                }
            }
            function = null!;
            barOffset = 0;
            return false;
        }
    }
}
