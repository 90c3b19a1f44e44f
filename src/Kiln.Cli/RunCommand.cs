using System.Runtime.InteropServices;
using Kiln.Interop;
using Kiln.Vmm;
using Kiln.Vmm.Snapshot;

namespace Kiln.Cli;

/// <summary>`kiln run`: boot one VM with the terminal as its serial console.</summary>
public static class RunCommand
{
    private sealed class Settings
    {
        public string? Kernel;
        public string? Initrd;
        public string? Cmdline;
        public ulong Memory = 512UL << 20;
        public int Cpus = 1;
        public ushort? DebugExit = 0xF4;
        public bool NoReboot;
        public bool Stats;
        public List<DiskConfig> Disks = [];
        public bool Rng;
        public List<Virtio.Net.NetDeviceOptions> Nics = [];
        public ConsoleKind Console = ConsoleKind.Serial;
        public VirtioTransportKind Transport = VirtioTransportKind.Pci;
        public string? ControlSocket;
        public string? Name;
        public string? Incoming;
        public string? IncomingTokenFile;
        public string? IncomingTlsCert;
        public string? IncomingTlsKey;
        public int IncomingTimeout = 120;
        public string? Restore;
        public bool Verify;

        /// <summary>Options that shape the machine; a restore takes those from the snapshot.</summary>
        public List<string> MachineOptions = [];
    }

    private static readonly CliOptions<Settings> Options = new CliOptions<Settings>("run", "--kernel PATH [options]")
        .Value("--kernel|-k", "PATH", "kernel to boot: Linux bzImage, ELF vmlinux, or multiboot ELF", (s, v) => { s.Kernel = v; s.MachineOptions.Add("--kernel"); })
        .Value("--initrd|-i", "PATH", "initial ramdisk (multiboot: module 0)", (s, v) => { s.Initrd = v; s.MachineOptions.Add("--initrd"); })
        .Value("--cmdline|-c", "TEXT", $"kernel command line (Linux default: \"{VmConfig.DefaultLinuxCommandLine}\")", (s, v) => { s.Cmdline = v; s.MachineOptions.Add("--cmdline"); })
        .Value("--memory|-m", "SIZE", "guest RAM, e.g. 512M, 2G (default 512M)", (s, v) => { s.Memory = SizeParser.Parse(v, "--memory"); s.MachineOptions.Add("--memory"); })
        .Value("--cpus", "N", $"number of vCPUs, 1 to {VmConfig.MaxCpus} (default 1)",
            (s, v) => { s.Cpus = (int)SizeParser.ParseNumber(v, "--cpus", VmConfig.MaxCpus); s.MachineOptions.Add("--cpus"); })
        .Value("--debug-exit", "PORT|off", "QEMU isa-debug-exit port: exit status = (value << 1) | 1 (default 0xf4)",
            (s, v) => { s.DebugExit = v == "off" ? null : (ushort)SizeParser.ParseNumber(v, "--debug-exit", 0xFFFC); s.MachineOptions.Add("--debug-exit"); })
        .Value("--disk", "PATH[,ro][,serial=ID][,format=raw|qcow2]", "a virtio-blk disk: raw file, block device or qcow2 (detected); repeatable",
            (s, v) => { s.Disks.Add(DeviceOptionParser.Disk(v)); s.MachineOptions.Add("--disk"); })
        .Value("--net", "tap=NAME[,mac=MAC][,bridge=BR]", "a virtio-net NIC on a TAP interface (created if needed); repeatable",
            (s, v) => { s.Nics.Add(ParseNic(v)); s.MachineOptions.Add("--net"); })
        .Flag("--rng", "a virtio-rng device fed by the host's random number generator", s => { s.Rng = true; s.MachineOptions.Add("--rng"); })
        .Value("--console", "serial|virtio", "the terminal's device: COM1 (ttyS0, default) or virtio-console (hvc0)",
            (s, v) => { s.Console = DeviceOptionParser.Choice<ConsoleKind>("--console", v); s.MachineOptions.Add("--console"); })
        .Value("--transport", "pci|mmio", "how virtio devices appear: virtio-pci (default) or virtio-mmio",
            (s, v) => { s.Transport = DeviceOptionParser.Choice<VirtioTransportKind>("--transport", v); s.MachineOptions.Add("--transport"); })
        .Flag("--no-reboot", "exit when the guest resets instead of rebooting", s => s.NoReboot = true)
        .Flag("--stats", "print exit counts when the VM stops", s => s.Stats = true)
        .Value("--control-socket", "PATH", "serve the control protocol on this Unix socket (console goes there and to stdout)",
            (s, v) => s.ControlSocket = v)
        .Value("--name", "NAME", "the VM's name (reported on the control socket)", (s, v) => s.Name = v)
        .Value("--incoming", "tcp:ADDR:PORT", "receive a live migration instead of booting (same --memory/--cpus/devices as the source)",
            (s, v) => s.Incoming = v)
        .Value("--incoming-token-file", "PATH", "the migration's one-time token (default: $KILN_MIGRATION_TOKEN)",
            (s, v) => s.IncomingTokenFile = v)
        .Value("--incoming-tls-cert", "PEM", "serve the migration stream over TLS with this certificate", (s, v) => s.IncomingTlsCert = v)
        .Value("--incoming-tls-key", "PEM", "the TLS certificate's private key", (s, v) => s.IncomingTlsKey = v)
        .Value("--incoming-timeout", "SECONDS", "give up when no source connects in time (default 120)",
            (s, v) => s.IncomingTimeout = (int)SizeParser.ParseNumber(v, "--incoming-timeout", 86400))
        .Value("--restore", "FILE", "resume the VM saved in a snapshot FILE (its machine options come from the file)",
            (s, v) => s.Restore = v)
        .Flag("--verify", "with --restore: check the CRC of all saved RAM before resuming (reads the whole file)",
            s => s.Verify = true);

    public static string Help => Options.Help() + "\n\nConsole: C-a x exits, C-a h for help.";

    public static int Execute(IReadOnlyList<string> args)
    {
        var settings = new Settings();
        Options.Parse(settings, args);
        if (settings.Restore is not null && settings.Incoming is not null)
            throw new UsageException("run: --restore and --incoming exclude each other");
        if (settings.Restore is not null)
            return Restore(settings);
        if (settings.Verify)
            throw new UsageException("run: --verify needs --restore FILE");
        if (settings.Kernel is null)
            throw new UsageException("run: --kernel PATH is required (see 'kiln run --help')");
        if (settings.Cpus < 1)
            throw new UsageException("run: --cpus must be at least 1");
        var config = new VmConfig
        {
            KernelPath = settings.Kernel, InitrdPath = settings.Initrd, CommandLine = settings.Cmdline,
            MemoryBytes = settings.Memory, CpuCount = settings.Cpus, DebugExitPort = settings.DebugExit,
            NoReboot = settings.NoReboot, Disks = settings.Disks, Nics = settings.Nics, Rng = settings.Rng, Console = settings.Console,
            Transport = settings.Transport,
        };
        if (settings.Incoming is not null)
            CheckIncomingDisks(settings.Disks);
        using var incoming = settings.Incoming is null ? null : IncomingOption.Listen(settings.Incoming,
            settings.IncomingTokenFile, settings.IncomingTlsCert, settings.IncomingTlsKey, settings.IncomingTimeout);
        VmmRunner.MachineFactory? first = incoming is null ? null : (kvm, cpuid, console) => incoming.Receive(config, kvm, cpuid, console);
        if (settings.ControlSocket is not null)
            return ControlledRun.Run(config, settings.ControlSocket, settings.Name, settings.Stats, first,
                incoming is null ? null : "incoming-complete");
        return Run(config, settings.Stats, first);
    }

    /// <summary>An incoming migration opens its disks only when the source arrives; a disk that cannot exist then is
    /// refused now. An absent image in an existing directory is fine: a copy-storage migration creates it.</summary>
    public static void CheckIncomingDisks(IEnumerable<DiskConfig> disks)
    {
        foreach (var disk in disks)
        {
            if (File.Exists(disk.Path))
                continue;
            string directory = Path.GetDirectoryName(Path.GetFullPath(disk.Path)) ?? "/";
            if (!Directory.Exists(directory))
                throw new UsageException($"run: --disk {disk.Path}: neither the image nor its directory {directory} exists");
            KilnLog.Info($"--disk {disk.Path} does not exist yet: a copy-storage migration creates it; " +
                         "a shared-storage one will fail");
        }
    }

    /// <summary>`kiln run --restore FILE`: the machine comes from the snapshot; only where its console goes, its
    /// control socket and name, --no-reboot and --stats are the user's to choose.</summary>
    private static int Restore(Settings settings)
    {
        if (settings.MachineOptions.Count > 0)
            throw new UsageException(
                $"run: {settings.MachineOptions[0]} cannot be combined with --restore (the snapshot defines the machine)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var snapshot = SnapshotFile.Open(settings.Restore!);
        if (settings.Verify)
            snapshot.VerifyRam();
        var saved = snapshot.Config.ToVmConfig();
        var config = settings.NoReboot ? saved with { NoReboot = true } : saved;
        var opened = clock.Elapsed;
        VmmRunner.MachineFactory restore = (kvm, cpuid, console) =>
        {
            var built = clock.Elapsed;
            var machine = VmSnapshot.Restore(snapshot, config, kvm, cpuid, console);
            // What remains until the vCPUs run is the runner starting them: microseconds.
            if (settings.Stats)
                KilnLog.Info($"restore: file opened and checked in {opened.TotalMilliseconds:F2} ms, machine restored in " +
                    $"{(clock.Elapsed - built).TotalMilliseconds:F2} ms ({snapshot.RamBytes >> 20} MiB RAM mapped lazily); " +
                    $"{clock.Elapsed.TotalMilliseconds:F2} ms from open to resume");
            return machine;
        };
        if (settings.ControlSocket is not null)
            return ControlledRun.Run(config, settings.ControlSocket, settings.Name, settings.Stats, restore);
        return Run(config, settings.Stats, restore);
    }

    private static int Run(VmConfig config, bool stats, VmmRunner.MachineFactory? firstMachine = null)
    {
        using var runner = new VmmRunner(config);
        byte[]? savedTerminal = Terminal.IsTerminal(0) ? Terminal.MakeRaw(0) : null;
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Stop(c, runner));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Stop(c, runner));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => Stop(c, runner));
        MachineExit exit;
        try
        {
            exit = runner.Run(firstMachine);
        }
        finally
        {
            if (savedTerminal is not null)
                Terminal.Restore(0, savedTerminal);
        }
        if (stats)
            PrintStats(runner);
        switch (exit.Kind)
        {
            case MachineExitKind.TripleFault:
                KilnLog.Error($"guest triple fault: {exit.Message}");
                break;
            case MachineExitKind.Error:
                KilnLog.Error(exit.Message);
                break;
            case MachineExitKind.UserStop:
                KilnLog.Info(exit.Message);
                break;
            default:
                KilnLog.Debug($"{exit.Kind}: {exit.Message}");
                break;
        }
        return exit.ExitCode;
    }

    private static Virtio.Net.NetDeviceOptions ParseNic(string text)
    {
        try
        {
            return Virtio.Net.NetDeviceOptions.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--net: {e.Message}");
        }
    }

    private static void Stop(PosixSignalContext context, VmmRunner runner)
    {
        context.Cancel = true;
        runner.RequestStop(MachineExit.UserStop($"terminating on signal {context.Signal}"));
    }

    internal static void PrintStats(VmmRunner runner)
    {
        KilnLog.Info($"boots: {runner.Boots}");
        foreach (var (reason, count) in runner.LastExitCounts)
            KilnLog.Info($"exits {reason,-16} {count,12:N0}");
        KilnLog.Info($"unhandled port reads {runner.LastUnhandledPorts.Reads:N0}, writes {runner.LastUnhandledPorts.Writes:N0}");
        foreach (var (instruction, count) in runner.LastFallbackCounts)
            KilnLog.Info($"emulated {instruction,-24} {count,12:N0}");
    }
}
