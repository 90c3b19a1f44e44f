using Kiln.Contracts.Control;
using Kiln.Contracts.Spec;
using Kiln.Vmm;
using Kiln.Vmm.Host;

namespace Kiln.Cli;

/// <summary>`kiln run`: its flags become one <see cref="VmmLaunch"/> (the VM's <see cref="VmSpec"/> and this
/// process's control socket and output), which <see cref="VmmHost"/> runs exactly as it runs a daemon's launch.</summary>
public static class RunCommand
{
    private sealed class Settings
    {
        public string? Kernel;
        public string? Initrd;
        public string? Cmdline;
        public ulong Memory = MachineSpec.DefaultMemoryBytes;
        public int Cpus = 1;
        public ushort? DebugExit = DeviceSpec.DefaultDebugExitPort;
        public bool NoReboot;
        public bool Stats;
        public List<DiskSpec> Disks = [];
        public bool Rng;
        public List<NicSpec> Nics = [];
        public ConsoleKind Console = ConsoleKind.Serial;
        public VirtioTransport Transport = VirtioTransport.Pci;
        public string? ControlSocket;
        public string? Name;
        public string? Incoming;
        public string? IncomingTokenFile;
        public string? IncomingTlsCert;
        public string? IncomingTlsKey;
        public int IncomingTimeout = IncomingSource.DefaultTimeoutSeconds;
        public string? Restore;
        public bool Verify;

        /// <summary>Options that shape the machine; a restore takes those from the snapshot.</summary>
        public List<string> MachineOptions = [];
    }

    private static readonly CliOptions<Settings> Options = new CliOptions<Settings>("run", "--kernel PATH [options]")
        .Value("--kernel|-k", "PATH", "kernel to boot: Linux bzImage, ELF vmlinux, or multiboot ELF", (s, v) => { s.Kernel = v; s.MachineOptions.Add("--kernel"); })
        .Value("--initrd|-i", "PATH", "initial ramdisk (multiboot: module 0)", (s, v) => { s.Initrd = v; s.MachineOptions.Add("--initrd"); })
        .Value("--cmdline|-c", "TEXT", $"kernel command line (Linux default: \"{Boot.LinuxBoot.DefaultCommandLine}\")", (s, v) => { s.Cmdline = v; s.MachineOptions.Add("--cmdline"); })
        .Value("--memory|-m", "SIZE", "guest RAM, e.g. 512M, 2G (default 512M)", (s, v) => { s.Memory = SizeParser.Parse(v, "--memory"); s.MachineOptions.Add("--memory"); })
        .Value("--cpus", "N", $"number of vCPUs, 1 to {MachineSpec.MaxCpus} (default 1)",
            (s, v) => { s.Cpus = (int)SizeParser.ParseNumber(v, "--cpus", MachineSpec.MaxCpus); s.MachineOptions.Add("--cpus"); })
        .Value("--debug-exit", "PORT|off", "QEMU isa-debug-exit port: exit status = (value << 1) | 1 (default 0xf4)",
            (s, v) => { s.DebugExit = v == "off" ? null : (ushort)SizeParser.ParseNumber(v, "--debug-exit", 0xFFFC); s.MachineOptions.Add("--debug-exit"); })
        .Value("--disk", "PATH[,ro][,serial=ID][,format=raw|qcow2]", "a virtio-blk disk: raw file, block device or qcow2 (detected); repeatable",
            (s, v) => { s.Disks.Add(DeviceOptionParser.Disk(v)); s.MachineOptions.Add("--disk"); })
        .Value("--net", "tap=NAME[,mac=MAC][,bridge=BR]", "a virtio-net NIC on a TAP interface (created if needed); repeatable",
            (s, v) => { s.Nics.Add(DeviceOptionParser.Nic(v)); s.MachineOptions.Add("--net"); })
        .Flag("--rng", "a virtio-rng device fed by the host's random number generator", s => { s.Rng = true; s.MachineOptions.Add("--rng"); })
        .Value("--console", "serial|virtio", "the terminal's device: COM1 (ttyS0, default) or virtio-console (hvc0)",
            (s, v) => { s.Console = DeviceOptionParser.Choice<ConsoleKind>("--console", v); s.MachineOptions.Add("--console"); })
        .Value("--transport", "pci|mmio", "how virtio devices appear: virtio-pci (default) or virtio-mmio",
            (s, v) => { s.Transport = DeviceOptionParser.Choice<VirtioTransport>("--transport", v); s.MachineOptions.Add("--transport"); })
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

    public static int Execute(IReadOnlyList<string> args) => VmmHost.Run(Launch(args));

    /// <summary>The launch the flags describe; usage errors (and a spec that cannot run) are thrown here, before
    /// anything starts.</summary>
    public static VmmLaunch Launch(IReadOnlyList<string> args)
    {
        var s = new Settings();
        Options.Parse(s, args);
        if (s.Restore is not null && s.Incoming is not null)
            throw new UsageException("run: --restore and --incoming exclude each other");
        if (s.Restore is not null && s.MachineOptions.Count > 0)
            throw new UsageException($"run: {s.MachineOptions[0]} cannot be combined with --restore (the snapshot defines the machine)");
        if (s.Verify && s.Restore is null)
            throw new UsageException("run: --verify needs --restore FILE");
        if (s.Restore is null && s.Kernel is null)
            throw new UsageException("run: --kernel PATH is required (see 'kiln run --help')");
        if (s.Cpus < 1)
            throw new UsageException("run: --cpus must be at least 1");
        if ((s.IncomingTlsCert is null) != (s.IncomingTlsKey is null))
            throw new UsageException("--incoming-tls-cert and --incoming-tls-key go together");
        if (s.Incoming is not null)
            CheckIncomingDisks(s.Disks);
        var spec = new VmSpec
        {
            Name = s.Name,
            Machine = new MachineSpec { MemoryBytes = s.Memory, Cpus = s.Cpus, NoReboot = s.NoReboot, Transport = s.Transport },
            Boot = new BootSpec { Kernel = s.Kernel ?? "", Initrd = s.Initrd, CommandLine = s.Cmdline },
            Disks = s.Disks, Nics = s.Nics, Console = s.Console,
            Devices = new DeviceSpec { Rng = s.Rng, DebugExitPort = s.DebugExit },
            Source = s.Restore is not null ? new StartSource { Restore = new RestoreSource { File = s.Restore, Verify = s.Verify } }
                : s.Incoming is not null ? new StartSource
                {
                    Incoming = new IncomingSource
                    {
                        Listen = s.Incoming, TokenFile = s.IncomingTokenFile, TlsCert = s.IncomingTlsCert, TlsKey = s.IncomingTlsKey,
                        TimeoutSeconds = s.IncomingTimeout,
                    },
                }
                : null,
        };
        if (VmSpecValidator.Validate(spec) is [var first, ..])
            throw new UsageException($"run: {FlagOf(first.Field)}: {first.Message}");
        return new VmmLaunch { Spec = spec, ControlSocket = s.ControlSocket, Stats = s.Stats };
    }

    /// <summary>The flag a spec field came from, so a user's error names what they typed.</summary>
    private static string FlagOf(string field) => field switch
    {
        "machine.memoryBytes" => "--memory",
        "machine.cpus" => "--cpus",
        "machine.transport" => "--transport",
        "boot.kernel" => "--kernel",
        "boot.initrd" => "--initrd",
        "boot.cmdline" => "--cmdline",
        "devices.debugExitPort" => "--debug-exit",
        "name" => "--name",
        _ when field.StartsWith("disks[", StringComparison.Ordinal) => "--disk",
        _ when field.StartsWith("nics[", StringComparison.Ordinal) => "--net",
        _ when field.StartsWith("source.incoming", StringComparison.Ordinal) => "--incoming",
        _ when field.StartsWith("source.restore", StringComparison.Ordinal) => "--restore",
        _ => field,
    };

    /// <summary>An incoming migration opens its disks only when the source arrives; a disk that cannot exist then is
    /// refused now. An absent image in an existing directory is fine: a copy-storage migration creates it.</summary>
    public static void CheckIncomingDisks(IEnumerable<DiskSpec> disks)
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
}
