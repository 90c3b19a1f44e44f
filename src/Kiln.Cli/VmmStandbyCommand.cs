using Kiln.Contracts.Control;
using Kiln.Interop;
using Kiln.Vmm.Host;

namespace Kiln.Cli;

/// <summary>`kiln vmm-standby`: a VMM process the daemon starts before a domain needs it (as Firecracker's jailer
/// keeps processes ready), so `kiln start` does not wait for process creation, .NET start-up and the first
/// compilation of the machine-building code. It waits for one <see cref="VmmLaunch"/> line on stdin, points stdout
/// and stderr at the domain's log, answers the daemon on the pipe that was its stdout (one
/// <see cref="VmmLaunchReply"/> line: running, or why not), and from then on is exactly `kiln run
/// --control-socket ...`: its own process in its own session, which outlives the daemon. Stdin ending before a
/// launch line (the daemon went away) ends it.</summary>
public static class VmmStandbyCommand
{
    private sealed class Settings
    {
        public string? StateDir;
        public bool Warm;
    }

    // --state-dir marks the process as the daemon's (for people and test clean-up) and holds the warm-up's files;
    // --warm boots a tiny guest first so that the real start finds its code compiled and loaded.
    private static readonly CliOptions<Settings> Options = new CliOptions<Settings>("vmm-standby", "--state-dir DIR [--warm]")
        .Value("--state-dir", "DIR", "the daemon's state directory", (s, v) => s.StateDir = v)
        .Flag("--warm", "boot a tiny guest once before waiting", s => s.Warm = true);

    public static int Execute(IReadOnlyList<string> args)
    {
        var settings = new Settings();
        Options.Parse(settings, args);
        if (settings.Warm && settings.StateDir is not null)
            StandbyWarmUp.Run(Path.Combine(settings.StateDir, "run"));
        string? line = Console.In.ReadLine();
        if (line is null)
            return 0;
        var reply = new LaunchReplyPipe(ProcessCalls.Duplicate(1));
        VmmLaunch launch;
        try
        {
            launch = VmmLaunch.Parse(line);
            if (launch.ControlSocket is null || launch.LogPath is null)
                throw new UsageException("vmm-standby: the launch line needs a \"controlSocket\" and a \"log\" path");
            RedirectOutput(launch.LogPath);
        }
        catch (Exception e)
        {
            reply.Failed(e);
            throw;
        }
        return VmmHost.Run(launch, reply);
    }

    private static void RedirectOutput(string logPath)
    {
        // The daemon has created the log (mode 0600) before the launch.
        using var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        int fd = (int)log.SafeFileHandle.DangerousGetHandle();
        ProcessCalls.DuplicateTo(fd, 1);
        ProcessCalls.DuplicateTo(fd, 2);
    }

    /// <summary>The daemon's end of the launch: one reply line on the descriptor that was stdout, then closed.</summary>
    private sealed class LaunchReplyPipe(int fd) : ILaunchReporter
    {
        private int _fd = fd;

        public void Started() => Send(new VmmLaunchReply { Ok = true, Pid = Environment.ProcessId });

        public void Failed(Exception error) => Send(new VmmLaunchReply
        {
            Ok = false, Error = error.Message, Field = (error as Contracts.Spec.VmSpecException)?.Field,
        });

        private void Send(VmmLaunchReply reply)
        {
            int fd = Interlocked.Exchange(ref _fd, -1);
            if (fd < 0)
                return;
            try
            {
                Libc.WriteAll(fd, System.Text.Encoding.UTF8.GetBytes(reply.ToJsonLine() + "\n"));
            }
            catch (SystemCallException)
            {
                // The daemon went away: nobody to tell.
            }
            Libc.close(fd);
        }
    }
}
