using Kiln.Boot;
using Kiln.Boot.Acpi;
using Kiln.Devices;
using Kiln.Devices.Bus;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using Kiln.Kvm;
using Kiln.Memory;
using Kiln.Vmm.Cpu;
using Kiln.Vmm.Emulation;
using Kiln.Storage;
using Kiln.Virtio;
using Kiln.Virtio.Block;
using Kiln.Virtio.Console;
using Kiln.Virtio.Net;
using Kiln.Virtio.Rng;

namespace Kiln.Vmm;

/// <summary>One boot of a VM: KVM VM, guest RAM, platform devices, vCPUs. A guest reset ends this machine and the
/// runner builds a fresh one, so no state from the previous boot can leak into the next.</summary>
public sealed class Machine : IMachineControl, IDisposable
{
    // Addresses KVM needs for its own use on Intel hosts (real-mode TSS and EPT identity map), just below the BIOS.
    private const uint TssAddress = 0xFFFB_D000;
    private const ulong IdentityMapAddress = 0xFFFB_C000;

    private readonly VirtualMachine _vm;
    private readonly GuestMemory _memory;
    private readonly List<Vcpu> _vcpus = [];
    private readonly List<VcpuRunner> _runners = [];
    private readonly List<IStateful> _devices = [];
    private readonly ManualResetEventSlim _stopped = new();
    private MachineExit? _exit;

    private Machine(VmConfig config, VirtualMachine vm, GuestMemory memory)
    {
        Config = config;
        _vm = vm;
        _memory = memory;
    }

    public VmConfig Config { get; }
    public IoBus Pio { get; } = new("port I/O");
    public IoBus Mmio { get; } = new("MMIO");
    public Serial8250 Serial { get; private set; } = null!;

    /// <summary>The CMOS, whose battery-backed RAM a reboot carries over (as on a PC).</summary>
    public CmosRtc Cmos { get; private set; } = null!;

    /// <summary>Every device's state, for snapshots and migration.</summary>
    public IReadOnlyList<IStateful> Devices => _devices;
    public GuestMemory Memory => _memory;
    /// <summary>Where the loaded kernel starts; null on a machine created for a restore.</summary>
    public BootEntry? Boot { get; private set; }
    public IEnumerable<ExitCounters> ExitCounters => _runners.Select(r => r.Exits);

    /// <summary>Completes instructions KVM's own emulator cannot (see HOST.md: INT3, x87 control, ...).</summary>
    public InstructionFallback Fallback { get; private set; } = null!;

    public bool IsStopping => Volatile.Read(ref _exit) is not null;

    /// <summary>A machine ready to boot: kernel loaded, the boot vCPU at the kernel's entry.</summary>
    public static Machine Create(VmConfig config, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid, ISerialOutput console) =>
        Create(config, kvm, supportedCpuid, console, restoring: false, guestMemory: null);

    /// <summary>A machine whose state will come from <see cref="RestoreState"/> (a snapshot or an incoming
    /// migration): the same devices and vCPUs as for a boot, but no kernel is loaded and the vCPUs keep KVM's reset
    /// state. <paramref name="guestMemory"/> (e.g. mapped from a snapshot file) becomes the guest's RAM and is
    /// owned by the machine from then on; null gives fresh zeroed RAM.</summary>
    public static Machine CreateForRestore(VmConfig config, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid,
        ISerialOutput console, GuestMemory? guestMemory = null) =>
        Create(config, kvm, supportedCpuid, console, restoring: true, guestMemory);

    private static Machine Create(VmConfig config, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid, ISerialOutput console,
        bool restoring, GuestMemory? guestMemory)
    {
        var vm = kvm.CreateVm();
        GuestMemory? memory = guestMemory;
        Machine? machine = null;
        try
        {
            vm.SetTssAddress(TssAddress);
            vm.SetIdentityMapAddress(IdentityMapAddress);
            vm.CreateIrqchip();
            vm.CreatePit2(KvmPitConfig.SpeakerDummy);
            memory ??= GuestMemory.Create(X86MemoryLayout.RamRegions(config.MemoryBytes));
            memory.RegisterWith(vm);
            machine = new Machine(config, vm, memory);
            machine.Fallback = new InstructionFallback(memory);
            machine.AddPlatformDevices(console);
            machine.AddVirtioDevices(console);
            if (!restoring)
                machine.Boot = KernelLoader.Load(memory, new BootRequest(config.KernelPath, config.InitrdPath,
                    machine.KernelCommandLine(), config.CpuCount));
            machine.CreateVcpus(supportedCpuid, bootCpu: !restoring);
            return machine;
        }
        catch
        {
            if (machine is not null)
                machine.Dispose();
            else
            {
                memory?.Dispose();
                vm.Dispose();
            }
            throw;
        }
    }

    private void AddPlatformDevices(ISerialOutput console)
    {
        Serial = new Serial8250(Serial8250.Com1Base, new KvmInterruptLine(_vm, Serial8250.Com1Irq), console);
        AddPortDevice(Serial8250.Com1Base, Serial8250.PortCount, Serial, "serial (COM1)");
        Cmos = new CmosRtc(Config.MemoryBytes);
        AddPortDevice(CmosRtc.BasePort, CmosRtc.PortCount, Cmos, "CMOS RTC");
        var i8042 = new I8042(new KvmInterruptLine(_vm, I8042.Irq), this);
        _devices.Add(i8042);
        AddPortDevice(I8042.DataPortAddress, I8042.PortLength, i8042.DataPort, "i8042 data");
        AddPortDevice(I8042.CommandPortAddress, I8042.PortLength, i8042.CommandPort, "i8042 command");
        AddPortDevice(PostCode.Port, PostCode.PortCount, new PostCode(), "POST code");
        AddPortDevice(SystemControlPortA.Port, SystemControlPortA.PortCount, new SystemControlPortA(this), "system control port A");
        AddPortDevice(ResetControl.Port, ResetControl.PortCount, new ResetControl(this), "reset control");
        AddPortDevice(AcpiLayout.PmBase, AcpiLayout.PmLength, new AcpiPmDevice(this, AcpiLayout.SleepTypeS5, new KvmInterruptLine(_vm, AcpiLayout.SciIrq)), "ACPI PM");
        if (Config.DebugExitPort is ushort port)
            AddPortDevice(port, DebugExit.PortCount, new DebugExit(this, port), "debug exit");
    }

    private void AddVirtioDevices(ISerialOutput console)
    {
        RateLimitedLog.Sink = KilnLog.Warn; // guest-triggered lines: device faults, refused MSIs, broken drivers
        _virtio = new VirtioWiring(_vm, Pio, Mmio, Config.Transport, _devices.Add);
        for (int i = 0; i < Config.Disks.Count; i++)
        {
            var disk = Config.Disks[i];
            // Wrapped for migrate --copy-storage (changed blocks are only remembered while a migration runs).
            var backend = new DirtyBlockTracker(DiskImage.Open(disk.Path, disk.Format, disk.ReadOnly));
            _virtio.Add(new VirtioBlock(_memory, backend, disk.Serial), $"blk{i}");
        }
        for (int i = 0; i < Config.Nics.Count; i++)
            _virtio.Add(VirtioNet.OpenTap(_memory, Config.Nics[i]), $"net{i}");
        if (Config.Rng)
            _virtio.Add(new VirtioRng(_memory), "rng");
        if (Config.Console == ConsoleKind.Virtio)
        {
            VirtioConsole = new VirtioConsole(_memory, console);
            _virtio.Add(VirtioConsole, "console");
        }
    }

    /// <summary>The user's command line (or, if none, the default for a virtio console), plus what the guest needs
    /// to find virtio-mmio devices. A null result lets the loader use its kernel kind's default.</summary>
    private string? KernelCommandLine()
    {
        string? user = Config.CommandLine;
        if (user is null && Config.Console == ConsoleKind.Virtio)
            user = LinuxBoot.DefaultCommandLine.Replace("console=ttyS0", "console=hvc0");
        string extra = _virtio!.CommandLine;
        if (extra.Length == 0)
            return user;
        return $"{user ?? LinuxBoot.DefaultCommandLine} {extra}".Trim();
    }

    /// <summary>The device the user's keystrokes go to.</summary>
    public ISerialInput ConsoleInputDevice => (ISerialInput?)VirtioConsole ?? Serial;

    public VirtioConsole? VirtioConsole { get; private set; }

    private VirtioWiring? _virtio;

    /// <summary>The machine's virtio devices, in the order they were added (disks, NICs, rng, console).</summary>
    public IReadOnlyList<Virtio.VirtioDevice> VirtioDevices => _virtio?.Devices ?? [];

    private void AddPortDevice(ushort port, ulong length, IBusDevice device, string name)
    {
        Pio.Register(port, length, device, name);
        if (device is IStateful stateful && !_devices.Contains(stateful))
            _devices.Add(stateful);
    }

    private void CreateVcpus(KvmCpuidEntry2[] supportedCpuid, bool bootCpu)
    {
        for (int i = 0; i < Config.CpuCount; i++)
        {
            var vcpu = _vm.CreateVcpu(i);
            _vcpus.Add(vcpu);
            VcpuInitializer.Initialize(vcpu, supportedCpuid, Config.CpuCount);
            // Application processors stay in KVM's wait-for-SIPI state until the guest starts them.
            if (i == 0 && bootCpu)
                BootCpuState.Apply(vcpu, Boot!);
            _runners.Add(new VcpuRunner(vcpu, this, Pio, Mmio, _memory));
        }
    }

    /// <summary>Runs every vCPU until something stops the machine, then returns why.</summary>
    public MachineExit Run()
    {
        Resume();
        _stopped.Wait();
        Pause();
        return _exit!;
    }

    /// <summary>Stops every vCPU thread (they leave KVM_RUN); the guest's state is then still in KVM and can be
    /// saved. Safe to call from any thread but the vCPUs' own.</summary>
    public void Pause()
    {
        lock (_runners)
            foreach (var runner in _runners)
                runner.Stop();
        _virtio?.Pause();
    }

    public void Resume()
    {
        _virtio?.Resume();
        lock (_runners)
            foreach (var runner in _runners)
                runner.Start();
        Resumed?.Invoke();
    }

    /// <summary>Raised after every <see cref="Resume"/> (including the one that starts <see cref="Run"/>) once the
    /// vCPU threads run: an incoming migration acknowledges the move from here.</summary>
    public event Action? Resumed;

    /// <summary>For live migration (same assembly): the KVM VM whose dirty log is read.</summary>
    internal VirtualMachine Vm => _vm;

    private int _leases;
    private bool _disposed;

    /// <summary>Keeps the machine (its RAM mapping and KVM handles) from being disposed until the lease is
    /// released: a migration reads guest RAM on its own thread while the runner may end the machine. Null when the
    /// machine is already disposed.</summary>
    internal IDisposable? Lease()
    {
        lock (_runners)
        {
            if (_disposed)
                return null;
            _leases++;
            return new MachineLease(this);
        }
    }

    private sealed class MachineLease(Machine machine) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0)
                return;
            lock (machine._runners)
            {
                machine._leases--;
                Monitor.PulseAll(machine._runners);
            }
        }
    }

    /// <summary>Captures the state of a paused machine, except guest RAM: KVM's irqchip, PIT and clock, every vCPU,
    /// every device.</summary>
    public byte[] SaveState()
    {
        var w = new StateWriter();
        w.WriteString(StateMagic);
        VmStateCodec.Save(_vm, w);
        w.WriteUInt32((uint)_vcpus.Count);
        var msrs = _vm.Kvm.GetMsrIndexList();
        foreach (var vcpu in _vcpus)
            VcpuStateCodec.Save(vcpu, msrs, w);
        w.WriteUInt32((uint)_devices.Count);
        foreach (var device in _devices)
        {
            w.WriteString(device.StateId);
            var section = new StateWriter();
            device.SaveState(section);
            w.WriteBytes(section.ToArray());
        }
        return w.ToArray();
    }

    /// <summary>Loads state saved by <see cref="SaveState"/> into a machine built from the same configuration and
    /// not yet running. A state from a different machine shape is refused with a clear error.</summary>
    public void RestoreState(byte[] state)
    {
        var r = new StateReader(state);
        if (r.ReadString() != StateMagic)
            throw new StateFormatException("not a Kiln machine state");
        VmStateCodec.Restore(_vm, r);
        uint cpus = r.ReadUInt32();
        if (cpus != _vcpus.Count)
            throw new StateFormatException($"state has {cpus} vCPUs, this machine {_vcpus.Count}");
        foreach (var vcpu in _vcpus)
            VcpuStateCodec.Restore(vcpu, r);
        uint devices = r.ReadUInt32();
        var byId = _devices.ToDictionary(d => d.StateId);
        for (uint i = 0; i < devices; i++)
        {
            string id = r.ReadString();
            byte[] section = r.ReadBytes();
            if (!byId.TryGetValue(id, out var device))
                throw new StateFormatException($"state has a device '{id}' this machine lacks");
            device.RestoreState(new StateReader(section));
        }
    }

    private const string StateMagic = "kiln-machine-state-1";

    /// <summary>The guest's kvmclock now (KVM_GET_CLOCK), in nanoseconds.</summary>
    public ulong GuestClockNanoseconds => _vm.GetClock().Clock;

    /// <summary>Moves the guest's kvmclock on by <paramref name="nanoseconds"/>, after a restore: the time the VM
    /// spent saved then passes for the guest too, so its clock neither stalls nor jumps back.</summary>
    public void AdvanceGuestClock(ulong nanoseconds)
    {
        var clock = _vm.GetClock();
        _vm.SetClock(new KvmClockData { Clock = clock.Clock + nanoseconds });
    }

    /// <summary>Stops the machine; the first reason wins. Safe from any thread.</summary>
    public void RequestStop(MachineExit exit)
    {
        if (Interlocked.CompareExchange(ref _exit, exit, null) is null)
            _stopped.Set();
    }

    void IMachineControl.RequestReset(string reason) => RequestStop(MachineExit.Reset(reason));

    void IMachineControl.RequestExit(int exitCode, string reason) => RequestStop(MachineExit.DebugExit(exitCode, reason));

    void IMachineControl.RequestPowerOff(string reason) => RequestStop(MachineExit.PowerOff(reason));

    public void Dispose()
    {
        lock (_runners)
        {
            _disposed = true;
            while (_leases > 0)
                Monitor.Wait(_runners);
        }
        _virtio?.Dispose();
        foreach (var vcpu in _vcpus)
            vcpu.Dispose();
        _vm.Dispose();
        _memory.Dispose();
    }
}
