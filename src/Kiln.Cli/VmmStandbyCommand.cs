using System.Runtime.InteropServices;
using System.Text.Json;
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
        // --state-dir marks the process as the daemon's (for people and test clean-up) and holds the warm-up's
        // files; --warm boots a tiny guest first so that the real start finds its code compiled and loaded.
        int dir = args.ToList().IndexOf("--state-dir");
        string? stateDir = dir >= 0 && dir + 1 < args.Count ? args[dir + 1] : null;
        if (args.Contains("--warm") && stateDir is not null)
            Warm(Path.Combine(stateDir, "run"));
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
        foreach (var (name, value) in launch.Environment ?? [])
            Environment.SetEnvironmentVariable(name, value);
        return RunCommand.Execute(launch.Arguments.Skip(1).ToList());
    }

    /// <summary>Runs the whole controlled-VMM path once on a 4 MiB machine whose guest (a flat multiboot image of
    /// a few instructions) writes one byte to COM1 and leaves through the debug-exit port: option parsing, the
    /// control socket, KVM set-up, the kernel loader, a virtio-pci device, vCPU and exit handling. Most of a start's
    /// CPU time is the runtime loading and preparing that code for the first time, and this moves it ahead of the
    /// start. Output goes to /dev/null; a failure only means a colder start.</summary>
    private static void Warm(string runDir)
    {
        string kernel = Path.Combine(runDir, $".warm-{Environment.ProcessId}.bin");
        string socket = Path.Combine(runDir, $".warm-{Environment.ProcessId}.sock");
        int savedOut = dup(1), savedErr = dup(2);
        try
        {
            File.WriteAllBytes(kernel, WarmUpImage());
            using (var devNull = new FileStream("/dev/null", FileMode.Open, FileAccess.Write))
            {
                int fd = (int)devNull.SafeFileHandle.DangerousGetHandle();
                dup2(fd, 1);
                dup2(fd, 2);
            }
            RunCommand.Execute(["--kernel", kernel, "--memory", "4M", "--rng", "--no-reboot", "--control-socket", socket, "--name", "warm-up"]);
            JsonSerializer.Deserialize("""{"cmd":"status"}""", ControlJsonContext.Default.ControlRequest);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Only a colder start: the launch reports any real problem with this host.
        }
        finally
        {
            if (savedOut >= 0)
                dup2(savedOut, 1);
            if (savedErr >= 0)
                dup2(savedErr, 2);
            File.Delete(kernel);
            File.Delete(socket);
        }
    }

    /// <summary>A multiboot image with address fields (no ELF), loaded at 1 MiB: `out 0x3f8, 'w'; out 0xf4, 0; hlt`.</summary>
    private static byte[] WarmUpImage()
    {
        const uint Magic = 0x1BAD_B002, AddressFields = 1 << 16, Load = 0x10_0000, CodeOffset = 32;
        var image = new byte[64];
        var words = new uint[] { Magic, AddressFields, unchecked(0u - Magic - AddressFields), Load, Load, 0, 0, Load + CodeOffset };
        for (int i = 0; i < words.Length; i++)
            BitConverter.TryWriteBytes(image.AsSpan(i * 4), words[i]);
        byte[] code = [0x66, 0xBA, 0xF8, 0x03, 0xB0, (byte)'w', 0xEE, 0xB0, 0x00, 0xE6, 0xF4, 0xF4];
        code.CopyTo(image, (int)CodeOffset);
        return image;
    }

    private static void RedirectOutput(string logPath)
    {
        // The daemon has created the log (mode 0600) before the launch.
        using var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        int fd = (int)log.SafeFileHandle.DangerousGetHandle();
        if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            throw new IOException($"vmm-standby: cannot point the console at {logPath} (errno {Marshal.GetLastPInvokeError()})");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int dup2(int oldFd, int newFd);

    [DllImport("libc", SetLastError = true)]
    private static extern int dup(int fd);
}
