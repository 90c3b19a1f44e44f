using System.Runtime.InteropServices;
using System.Text.Json;
using Kiln.Devices.Legacy;
using Kiln.Vmm;
using Kiln.Vmm.Control;

namespace Kiln.Cli;

/// <summary>`kiln vmm-standby`: a VMM process the daemon starts before a domain needs it (as Firecracker's jailer
/// keeps processes ready), so `kiln start` does not wait for process creation, .NET start-up and the first
/// compilation of the machine-building code. It waits for one <see cref="StandbyLaunch"/> line on stdin, points
/// stdout and stderr at the domain's log, and from then on is exactly `kiln run --control-socket ...`: its own
/// process in its own session, which outlives the daemon. Stdin ending before a launch line (the daemon went away)
/// ends it.</summary>
public static class VmmStandbyCommand
{
    public static int Execute(IReadOnlyList<string> args)
    {
        // --state-dir only marks the process as the daemon's (for people and test clean-up); --warm builds and
        // discards a small machine first so the real one finds its code compiled.
        if (args.Contains("--warm"))
            Warm();
        string? line = Console.In.ReadLine();
        if (line is null)
            return 0;
        StandbyLaunch? launch;
        try
        {
            launch = JsonSerializer.Deserialize(line, StandbyJsonContext.Default.StandbyLaunch);
        }
        catch (JsonException e)
        {
            throw new UsageException($"vmm-standby: malformed launch line: {e.Message}");
        }
        if (launch is null || launch.Arguments is not ["run", ..] || launch.LogPath.Length == 0)
            throw new UsageException("vmm-standby: the launch line needs \"args\" starting with \"run\" and a \"log\" path");
        RedirectOutput(launch.LogPath);
        return RunCommand.Execute(launch.Arguments.Skip(1).ToList());
    }

    /// <summary>Creates and disposes a 2 MiB machine without a kernel (the restore path builds the same VM,
    /// devices and vCPU as a boot), and runs the control protocol's serializers once.</summary>
    private static void Warm()
    {
        try
        {
            using var kvm = Kvm.Kvm.Open();
            var cpuid = kvm.GetSupportedCpuid();
            var config = new VmConfig { KernelPath = "", MemoryBytes = 2 << 20, CpuCount = 1 };
            using (Machine.CreateForRestore(config, kvm, cpuid, new DiscardOutput()))
            {
            }
            JsonSerializer.SerializeToUtf8Bytes(new ControlResponse { Ok = true, Exits = [] }, ControlJsonContext.Default.ControlResponse);
            JsonSerializer.Deserialize("""{"cmd":"status"}""", ControlJsonContext.Default.ControlRequest);
        }
        catch (Exception e) when (e is Kvm.KvmException or Interop.SystemCallException or IOException)
        {
            // Warming is an optimization: the launch reports any real problem with this host.
        }
    }

    private static void RedirectOutput(string logPath)
    {
        // The daemon has created the log (mode 0600) before the launch.
        using var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        int fd = (int)log.SafeFileHandle.DangerousGetHandle();
        if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            throw new IOException($"vmm-standby: cannot point the console at {logPath} (errno {Marshal.GetLastPInvokeError()})");
    }

    private sealed class DiscardOutput : ISerialOutput
    {
        public void Write(byte b)
        {
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int dup2(int oldFd, int newFd);
}
