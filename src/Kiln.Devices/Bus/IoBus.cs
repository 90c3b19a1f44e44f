namespace Kiln.Devices.Bus;

/// <summary>Maps address ranges (ports or guest-physical MMIO) to devices. Registration happens while the machine
/// is built; lookups on the exit path read an immutable sorted array, so they take no lock.
/// <para>The bus is where a guest's port and MMIO accesses enter device code, so it contains their faults: a device
/// handler that throws has its access dropped (a read returns all-ones), the fault is counted and logged through a
/// <see cref="RateLimitedLog"/>, and a device that implements <see cref="IAccessFaultHandler"/> is told (virtio
/// devices then need a reset). The vCPU thread goes on; a guest value never ends the VMM here.</para></summary>
public sealed class IoBus(string name)
{
    /// <summary>A registered device, with its own log for faults (one faulting device cannot hide another's lines).</summary>
    private readonly record struct Range(ulong Base, ulong Length, IBusDevice Device, string Name, RateLimitedLog FaultLog);

    private Range[] _ranges = [];
    private long _unhandledReads;
    private long _unhandledWrites;
    private long _deviceFaults;

    public string Name { get; } = name;

    /// <summary>Accesses that hit no device (reads returned all-ones, writes were dropped).</summary>
    public long UnhandledReads => Interlocked.Read(ref _unhandledReads);
    public long UnhandledWrites => Interlocked.Read(ref _unhandledWrites);

    /// <summary>Accesses whose device handler threw (each was dropped and logged, rate-limited).</summary>
    public long DeviceFaults => Interlocked.Read(ref _deviceFaults);

    public IEnumerable<(ulong Base, ulong Length, string Name)> Devices => _ranges.Select(r => (r.Base, r.Length, r.Name));

    public void Register(ulong baseAddress, ulong length, IBusDevice device, string deviceName)
    {
        if (length == 0 || baseAddress + length < baseAddress)
            throw new ArgumentException($"{Name}: bad range for {deviceName}");
        foreach (var r in _ranges)
            if (baseAddress < r.Base + r.Length && r.Base < baseAddress + length)
                throw new BusConflictException(
                    $"{Name}: {deviceName} at 0x{baseAddress:x}+{length} overlaps {r.Name} at 0x{r.Base:x}+{r.Length}");
        var list = _ranges.ToList();
        list.Add(new Range(baseAddress, length, device, deviceName, new RateLimitedLog()));
        _ranges = [.. list.OrderBy(r => r.Base)];
    }

    /// <summary>Dispatches a read; an address no device claims reads as all-ones (like an open bus) and is counted.</summary>
    public bool Read(ulong address, Span<byte> data)
    {
        if (Find(address, out var range))
        {
            try
            {
                range.Device.Read(address - range.Base, data);
            }
            catch (Exception e)
            {
                data.Fill(0xFF);
                ContainFault(range, address, data.Length, "read", e);
            }
            return true;
        }
        data.Fill(0xFF);
        Interlocked.Increment(ref _unhandledReads);
        return false;
    }

    /// <summary>Dispatches a write; an unclaimed address drops it and counts it.</summary>
    public bool Write(ulong address, ReadOnlySpan<byte> data)
    {
        if (Find(address, out var range))
        {
            try
            {
                range.Device.Write(address - range.Base, data);
            }
            catch (Exception e)
            {
                ContainFault(range, address, data.Length, "write", e);
            }
            return true;
        }
        Interlocked.Increment(ref _unhandledWrites);
        return false;
    }

    /// <summary>A device handler threw on a guest access: count it, log it (rate-limited) and let the device react.
    /// Nothing here may throw: it runs on a vCPU thread in place of the handler.</summary>
    private void ContainFault(in Range range, ulong address, int length, string access, Exception fault)
    {
        Interlocked.Increment(ref _deviceFaults);
        range.FaultLog.Write($"{Name}: {range.Name} failed on a {length}-byte {access} at 0x{address:x}: " +
                        $"{fault.GetType().Name}: {fault.Message}; access dropped");
        if (range.Device is not IAccessFaultHandler handler)
            return;
        try
        {
            handler.OnAccessFault(address - range.Base, fault);
        }
        catch (Exception e)
        {
            range.FaultLog.Write($"{Name}: {range.Name} failed again while handling that fault: {e.GetType().Name}: {e.Message}");
        }
    }

    private bool Find(ulong address, out Range found)
    {
        var ranges = _ranges;
        int lo = 0, hi = ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = ranges[mid];
            if (address < r.Base)
                hi = mid - 1;
            else if (address - r.Base >= r.Length)
                lo = mid + 1;
            else
            {
                found = r;
                return true;
            }
        }
        found = default;
        return false;
    }
}
