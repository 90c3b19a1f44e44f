using System.Runtime.InteropServices;
using Kiln.Vmm;
using Kiln.Vmm.Control;

namespace Kiln.Cli;

/// <summary>`kiln run --control-socket PATH`: the VMM as the daemon starts it. No terminal: the console goes to the
/// control socket's clients and to stdout (the daemon's log file); input comes from console clients.</summary>
public static class ControlledRun
{
    /// <param name="firstMachine">Builds the first machine instead of a boot (a snapshot restore, an incoming
    /// migration); null boots.</param>
    /// <param name="announceOnFirstRun">An event for watchers once that machine's vCPUs run (incoming-complete).</param>
    public static int Run(VmConfig config, string socketPath, string? name, bool stats,
        VmmRunner.MachineFactory? firstMachine = null, string? announceOnFirstRun = null)
    {
        using var server = new ControlServer(socketPath, name, echoToStdout: true);
        using var runner = new VmmRunner(config, server.OutputFd, server.InputFd);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Stop(c, runner));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Stop(c, runner));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; });
        server.Start(runner);
        if (firstMachine is not null && announceOnFirstRun is not null)
        {
            var inner = firstMachine;
            firstMachine = (kvm, cpuid, console) =>
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
            exit = runner.Run(firstMachine);
        }
        catch (Exception e)
        {
            exit = MachineExit.Error(e.Message);
            server.NotifyExit(exit);
            throw;
        }
        if (stats)
            RunCommand.PrintStats(runner);
        server.NotifyExit(exit);
        if (exit.Kind is MachineExitKind.TripleFault or MachineExitKind.Error)
            KilnLog.Error(exit.Message);
        else
            KilnLog.Info($"{exit.Kind}: {exit.Message}");
        return exit.ExitCode;
    }

    private static void Stop(PosixSignalContext context, VmmRunner runner)
    {
        context.Cancel = true;
        runner.RequestStop(MachineExit.UserStop($"terminating on signal {context.Signal}"));
    }
}
