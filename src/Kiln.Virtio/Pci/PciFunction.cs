namespace Kiln.Virtio.Pci;

/// <summary>A function on the host bridge's bus 0: a configuration space and (optionally) one 64-bit memory BAR that
/// the bridge's MMIO window dispatches to wherever the guest placed it. Called on vCPU threads.</summary>
public abstract class PciFunction
{
    protected PciFunction(PciConfigSpace config) => Config = config;

    public PciConfigSpace Config { get; }

    /// <summary>A short name for the bus listing.</summary>
    public abstract string Name { get; }

    /// <summary>Serialises configuration accesses with the function's own state.</summary>
    protected Lock ConfigLock { get; } = new();

    /// <summary>The BAR index of the function's memory BAR, or -1.</summary>
    public virtual int MemoryBar => -1;

    public virtual void ReadConfig(int offset, Span<byte> data)
    {
        lock (ConfigLock)
            Config.Read(offset, data);
    }

    public virtual void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        lock (ConfigLock)
            Config.Write(offset, data);
    }

    /// <summary>The host bridge's MMIO window, set when the function is attached: only accesses inside it reach the
    /// function, wherever the guest puts its BAR.</summary>
    internal (ulong Base, ulong Size)? BridgeWindow { get; set; }

    /// <summary>Whether [address, address + length) lies in the bridge's window (anywhere, before the function is
    /// attached).</summary>
    protected bool Reachable(ulong address, ulong length) =>
        BridgeWindow is not { } w || (address >= w.Base && address - w.Base < w.Size && length <= w.Size - (address - w.Base));

    /// <summary>A handler of this function threw on a guest access (the bus dropped it): a function with a reset
    /// protocol stops until the driver resets it.</summary>
    public virtual void OnAccessFault(Exception fault)
    {
    }

    /// <summary>Whether a guest-physical address falls in the memory BAR while memory decoding is on.</summary>
    public bool TryDecode(ulong address, out ulong offset)
    {
        offset = 0;
        int bar = MemoryBar;
        if (bar < 0)
            return false;
        ulong baseAddress, size;
        lock (ConfigLock)
        {
            if ((Config.CommandRegister & PciConfigSpace.CommandMemory) == 0)
                return false;
            baseAddress = Config.BarAddress(bar);
            size = Config.BarSize(bar);
        }
        if (address < baseAddress || address - baseAddress >= size)
            return false;
        offset = address - baseAddress;
        return true;
    }

    public virtual void ReadBar(ulong offset, Span<byte> data) => data.Fill(0xFF);

    public virtual void WriteBar(ulong offset, ReadOnlySpan<byte> data)
    {
    }
}
