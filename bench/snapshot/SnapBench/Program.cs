using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kiln.Devices.Legacy;
using Kiln.Vmm;
using Kiln.Vmm.Snapshot;

// Usage: SnapBench GUEST_ELF MEMORY_MIB FILL_MIB FILE [ROUNDS]
//        SnapBench --components MIB FILE [prealloc]: CRC, zero-scan and pwrite costs of a save, one by one.
//        SnapBench --components MIB FILE [prealloc]   (CRC, zero scan and pwrite costs of a save, separately)
// Boots the counter test guest (FILL_MIB of its RAM written with a pattern), saves it ROUNDS times (paused), then
// restores it ROUNDS times in this process, timing open -> vCPUs resumed and open -> first guest tick after the
// restore. The first restore is "cold" (.NET JIT), the rest "warm". Prints one JSON object.
if (args[0] == "--components")
{
    // Where a save's time goes: CRC-32C, the zero-page scan and the file writes, each over the same buffer.
    int mib = int.Parse(args[1], CultureInfo.InvariantCulture);
    var data = new byte[mib << 20];
    new Random(1).NextBytes(data);
    var zero = new byte[4096];
    var t = Stopwatch.StartNew();
    Crc32C.Compute(data);
    double crc = t.Elapsed.TotalMilliseconds;
    t.Restart();
    int nonZero = 0;
    for (int i = 0; i < data.Length; i += 4096)
        nonZero += data.AsSpan(i, 4096).SequenceEqual(zero) ? 0 : 1;
    double scan = t.Elapsed.TotalMilliseconds;
    t.Restart();
    using (var f = File.OpenHandle(args[2], FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.None, args.Length > 3 ? data.Length : 0))
        for (int i = 0; i < data.Length; i += 1 << 20)
            RandomAccess.Write(f, data.AsSpan(i, 1 << 20), i);
    double write = t.Elapsed.TotalMilliseconds;
    Console.WriteLine($"{mib} MiB: crc32c {crc:F1} ms, zero scan {scan:F1} ms ({nonZero} pages), pwrite 1 MiB chunks {write:F1} ms");
    return 0;
}
string guest = args[0];
ulong memoryMiB = ulong.Parse(args[1], CultureInfo.InvariantCulture);
int fill = int.Parse(args[2], CultureInfo.InvariantCulture);
string file = args[3];
int rounds = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 5;

using var kvm = Kiln.Kvm.Kvm.Open();
var cpuid = kvm.GetSupportedCpuid();
Kiln.Interop.Threads.InstallKickHandler();
var config = new VmConfig
{
    KernelPath = guest, CommandLine = $"test=counter delay_us=1000 fill_mib={fill}", MemoryBytes = memoryMiB << 20,
};

var boot = new Capture();
var saves = new List<double>();
long lastTick;
string savedText;
using (var machine = Machine.Create(config, kvm, cpuid, boot))
{
    machine.Resume();
    boot.WaitFor("tick 20", TimeSpan.FromMinutes(5));
    for (int i = 0; i < rounds; i++)
    {
        machine.Pause();
        var sw = Stopwatch.StartNew();
        VmSnapshot.Save(machine, file, "bench");
        saves.Add(sw.Elapsed.TotalMilliseconds);
        machine.Resume();
        Thread.Sleep(50);
    }
    machine.Pause();
    VmSnapshot.Save(machine, file, "bench");
    lastTick = boot.LastTick();
    savedText = boot.Text;
}

var toRunning = new List<double>();
var steps = new List<string>();
var toTick = new List<double>();
for (int i = 0; i < rounds; i++)
{
    // Drop the file's pages from the page cache? No: a restore right after a save finds them cached, as for
    // QEMU's run below; both are measured the same way.
    var console = new Capture();
    var sw = Stopwatch.StartNew();
    var snapshot = SnapshotFile.Open(file);
    double open = sw.Elapsed.TotalMilliseconds;
    var restoredConfig = snapshot.Config.ToVmConfig();
    var memory = snapshot.MapMemory();
    double mapped = sw.Elapsed.TotalMilliseconds;
    var machine = Machine.CreateForRestore(restoredConfig, kvm, cpuid, console, memory);
    double created = sw.Elapsed.TotalMilliseconds;
    machine.RestoreState(snapshot.MachineState);
    double restored = sw.Elapsed.TotalMilliseconds;
    snapshot.Dispose();
    machine.Resume();
    toRunning.Add(sw.Elapsed.TotalMilliseconds);
    steps.Add($"open {open:F2} map {mapped - open:F2} create {created - mapped:F2} state {restored - created:F2} resume {sw.Elapsed.TotalMilliseconds - restored:F2}");
    console.WaitFor("tick ", TimeSpan.FromSeconds(30));
    toTick.Add(sw.Elapsed.TotalMilliseconds);
    console.WaitFor($"tick {lastTick + 3}", TimeSpan.FromSeconds(30));
    machine.Pause();
    machine.Dispose();
    // A line cut by the save is finished by the restored guest: the two consoles concatenate.
    var ticks = Capture.Ticks(savedText + console.Text);
    for (int t = 1; t < ticks.Count; t++)
        if (ticks[t] != ticks[t - 1] + 1)
            throw new InvalidOperationException($"tick {ticks[t]} follows {ticks[t - 1]} across the restore");
}

var info = new FileInfo(file);
string J(List<double> v) => string.Join(",", v.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)));
Console.WriteLine($$"""{"memoryMiB":{{memoryMiB}},"fillMiB":{{fill}},"fileBytes":{{info.Length}},"saveMs":[{{J(saves)}}],"restoreToRunningMs":[{{J(toRunning)}}],"restoreToFirstTickMs":[{{J(toTick)}}],"steps":["{{string.Join("\",\"", steps)}}"]}""");
return 0;

sealed class Capture : ISerialOutput
{
    private readonly StringBuilder _text = new();

    public void Write(byte b)
    {
        lock (_text)
            _text.Append((char)b);
    }

    public string Text
    {
        get
        {
            lock (_text)
                return _text.ToString();
        }
    }

    public void WaitFor(string s, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (!Text.Contains(s, StringComparison.Ordinal))
        {
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"no '{s}' in {timeout}: {Text[^Math.Min(Text.Length, 300)..]}");
            Thread.SpinWait(100);
        }
    }

    public long LastTick() => Regex.Matches(Text, @"tick (\d+)\n").Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Last();

    public static List<long> Ticks(string text) =>
        [.. Regex.Matches(text, @"tick (\d+)\n").Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
}
