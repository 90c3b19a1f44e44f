using System.Globalization;
using Kiln.Virtio.Block;
using Kiln.Virtio.Net;
using Kiln.Contracts.Control;

namespace Kiln.Vmm.Control;

/// <summary>Collects the per-device and per-vCPU counters of a running machine.</summary>
public static class DeviceStatsCollector
{
    public static List<DiskStats> Disks(Machine machine)
    {
        var result = new List<DiskStats>();
        foreach (var blk in machine.VirtioDevices.OfType<VirtioBlock>())
        {
            int i = result.Count;
            var m = blk.Metrics;
            result.Add(new DiskStats
            {
                Name = DiskName(i), Path = i < machine.Spec.Disks.Count ? machine.Spec.Disks[i].Path : null,
                ReadBytes = m.ReadBytes, ReadRequests = m.ReadRequests, WriteBytes = m.WriteBytes, WriteRequests = m.WriteRequests,
                Flushes = m.Flushes, Errors = m.IoErrors + m.Unsupported,
            });
        }
        return result;
    }

    public static List<NicStats> Nics(Machine machine)
    {
        var result = new List<NicStats>();
        foreach (var net in machine.VirtioDevices.OfType<VirtioNet>())
        {
            int i = result.Count;
            var m = net.Metrics;
            result.Add(new NicStats
            {
                Name = $"net{i}", Tap = i < machine.Spec.Nics.Count ? machine.Spec.Nics[i].Tap : null,
                RxBytes = m.RxBytes, RxPackets = m.RxPackets, RxDropped = m.RxDropped,
                TxBytes = m.TxBytes, TxPackets = m.TxPackets, TxDropped = m.TxDropped,
            });
        }
        return result;
    }

    /// <summary>vda, vdb, ... in the order the disks were given, as the guest's virtio-blk driver names them.</summary>
    public static string DiskName(int index) =>
        index < 26 ? "vd" + (char)('a' + index) : "vd" + (char)('a' + index / 26 - 1) + (char)('a' + index % 26);

    /// <summary>The CPU time of this process's vCPU threads (named vcpuN), from /proc/self/task/*/stat.</summary>
    public static List<VcpuTime> VcpuTimes()
    {
        var result = new List<VcpuTime>();
        long ticksPerSecond = 100; // USER_HZ; Linux reports task times in these units on every architecture
        try
        {
            foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                try
                {
                    string comm = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                    if (!comm.StartsWith("vcpu", StringComparison.Ordinal) ||
                        !int.TryParse(comm.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                        continue;
                    string stat = File.ReadAllText(Path.Combine(task, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                    result.Add(new VcpuTime { Id = id, CpuTimeSeconds = (double)ticks / ticksPerSecond });
                }
                catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
                {
                    // The thread ended while we read it (a reboot replaces the vCPU threads).
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        result.Sort((a, b) => a.Id.CompareTo(b.Id));
        return result;
    }
}
