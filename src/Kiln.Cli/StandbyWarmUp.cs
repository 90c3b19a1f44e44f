using Kiln.Contracts.Control;
using Kiln.Interop;

namespace Kiln.Cli;

/// <summary>Runs the whole controlled-VMM path once on a 4 MiB machine whose guest (a flat multiboot image of a few
/// instructions) writes one byte to COM1 and leaves through the debug-exit port: option parsing, the control socket,
/// KVM set-up, the kernel loader, a virtio-pci device, vCPU and exit handling. Most of a start's CPU time is the
/// runtime loading and preparing that code for the first time, and this moves it ahead of the start. Output goes to
/// /dev/null; a failure only means a colder start.</summary>
internal static class StandbyWarmUp
{
    public static void Run(string runDir)
    {
        string kernel = Path.Combine(runDir, $".warm-{Environment.ProcessId}.bin");
        string socket = Path.Combine(runDir, $".warm-{Environment.ProcessId}.sock");
        int savedOut = -1, savedErr = -1;
        try
        {
            savedOut = ProcessCalls.Duplicate(1);
            savedErr = ProcessCalls.Duplicate(2);
            File.WriteAllBytes(kernel, WarmUpImage());
            using (var devNull = new FileStream("/dev/null", FileMode.Open, FileAccess.Write))
            {
                int fd = (int)devNull.SafeFileHandle.DangerousGetHandle();
                ProcessCalls.DuplicateTo(fd, 1);
                ProcessCalls.DuplicateTo(fd, 2);
            }
            RunCommand.Execute(["--kernel", kernel, "--memory", "4M", "--rng", "--no-reboot", "--control-socket", socket, "--name", "warm-up"]);
            VmmLaunch.Parse(new VmmLaunch { Spec = new() { Boot = new() { Kernel = kernel } } }.ToJsonLine());
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Only a colder start: the launch reports any real problem with this host.
        }
        finally
        {
            if (savedOut >= 0)
            {
                ProcessCalls.DuplicateTo(savedOut, 1);
                Libc.close(savedOut);
            }
            if (savedErr >= 0)
            {
                ProcessCalls.DuplicateTo(savedErr, 2);
                Libc.close(savedErr);
            }
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
}
