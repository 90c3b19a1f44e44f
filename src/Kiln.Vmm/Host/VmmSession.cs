using System.Runtime.InteropServices;
using Kiln.Contracts.Control;
using Kiln.Contracts.Spec;
using Kiln.Interop;
using Kiln.Vmm.Control;

namespace Kiln.Vmm.Host;

/// <summary>Runs one VM to its end, either on the terminal (raw mode, restored on exit; signals stop it) or behind a
/// control socket (no terminal: the console goes to the socket's clients and to stdout, which the daemon points at
/// the domain's log). Reports the start to the launcher once the first machine is built.</summary>
internal sealed class VmmSession(VmSpec spec, VmmLaunch launch, ILaunchReporter reporter,
    VmmRunner.MachineFactory? firstMachine, string? announceOnFirstRun)
{
    /// <summary>The start is reported before the first machine exists (an incoming migration waits for its source).</summary>
    public bool StartedEarly { get; set; }

    public int Run() => launch.ControlSocket is { } socket ? RunControlled(socket) : RunOnTerminal();

    private int RunOnTerminal()
    {
        using var runner = new VmmRunner(spec);
        byte[]? savedTerminal = Terminal.IsTerminal(0) ? Terminal.MakeRaw(0) : null;
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Stop(c, runner));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Stop(c, runner));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => Stop(c, runner));
        MachineExit exit;
        try
        {
            exit = runner.Run(Reporting(firstMachine));
        }
        finally
        {
            if (savedTerminal is not null)
                Terminal.Restore(0, savedTerminal);
        }
        if (launch.Stats)
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

    private int RunControlled(string socketPath)
    {
        using var server = new ControlServer(socketPath, spec.Name, echoToStdout: true);
        using var runner = new VmmRunner(spec, server.OutputFd, server.InputFd);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Stop(c, runner));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Stop(c, runner));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; });
        server.Start(runner);
        var first = Reporting(firstMachine);
        if (first is not null && announceOnFirstRun is not null)
        {
            var inner = first;
            first = (kvm, cpuid, console) =>
            {
                var machine = inner(kvm, cpuid, console);
                void Announce()
                {
                    machine.Resumed -= Announce;
                    server.Announce(new ControlEvent { Event = announceOnFirstRun });
                }
                machine.Resumed += Announce;
                return machine;
            };
        }
        MachineExit exit;
        try
        {
            exit = runner.Run(first);
        }
        catch (Exception e)
        {
            exit = MachineExit.Error(e.Message);
            server.NotifyExit(exit);
            throw;
        }
        if (launch.Stats)
            PrintStats(runner);
        server.NotifyExit(exit);
        if (exit.Kind is MachineExitKind.TripleFault or MachineExitKind.Error)
            KilnLog.Error(exit.Message);
        else
            KilnLog.Info($"{exit.Kind}: {exit.Message}");
        return exit.ExitCode;
    }

    /// <summary>The first machine's factory, reporting the start once it has built the machine (or at once when the
    /// start comes before the machine).</summary>
    private VmmRunner.MachineFactory Reporting(VmmRunner.MachineFactory? factory)
    {
        if (StartedEarly)
            reporter.Started();
        return (kvm, cpuid, console) =>
        {
            var machine = factory is null ? Machine.Create(spec, kvm, cpuid, console) : factory(kvm, cpuid, console);
            reporter.Started();
            return machine;
        };
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
