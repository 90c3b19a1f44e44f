using System.Text;

namespace Kiln.GuestKit;

/// <summary>Builds the kit's initramfs: a static busybox with a symlink per applet, the usual directories,
/// /dev/console, minimal /etc files, and an /init script. Extra files (kernel modules for the stock kit) can be
/// added by the caller.</summary>
public static class BusyboxInitramfs
{
    private static readonly string[] Directories =
        ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "mnt", "var", "lib"];

    /// <summary>Writes the archive. APPLETS are paths relative to / (as `busybox --list-full` prints them).</summary>
    public static void Write(Stream output, byte[] busybox, IEnumerable<string> applets, string initScript,
                             IEnumerable<(string Path, byte[] Data)>? extraFiles = null)
    {
        var cpio = new CpioNewcWriter(output);
        var made = new HashSet<string>(StringComparer.Ordinal);
        void Dir(string d)
        {
            if (d.Length == 0 || !made.Add(d))
                return;
            Dir(Path.GetDirectoryName(d) ?? "");
            cpio.AddDirectory(d, d == "tmp" ? 0x3FFu /* 1777 */ : 0x1EDu);
        }
        foreach (var d in Directories)
            Dir(d);
        cpio.AddCharDevice("dev/console", 5, 1);
        cpio.AddCharDevice("dev/null", 1, 3, 0x1B6 /* 0666 */);
        cpio.AddFile("bin/busybox", busybox, 0x1ED);
        foreach (string applet in applets.Select(a => a.Trim().TrimStart('/')).Where(a => a.Length > 0).Distinct())
        {
            if (applet == "bin/busybox" || applet == "init" || applet == "linuxrc")
                continue;
            Dir(Path.GetDirectoryName(applet) ?? "");
            cpio.AddSymlink(applet, "/bin/busybox");
        }
        cpio.AddFile("etc/passwd", Encoding.ASCII.GetBytes("root:x:0:0:root:/root:/bin/sh\n"));
        cpio.AddFile("etc/group", Encoding.ASCII.GetBytes("root:x:0:\n"));
        cpio.AddFile("etc/profile", Encoding.ASCII.GetBytes("export PS1='kiln# '\n"));
        cpio.AddFile("etc/fstab", Encoding.ASCII.GetBytes(InitScript.Fstab));
        // busybox acpid runs /etc/acpi/PWRF/00000080 when the ACPI power button is pressed (`kiln shutdown`).
        Dir("etc/acpi/PWRF");
        cpio.AddFile("etc/acpi/PWRF/00000080", Encoding.ASCII.GetBytes(InitScript.PowerButtonAction), 0x1ED);
        foreach (var (path, data) in extraFiles ?? [])
        {
            string p = path.TrimStart('/');
            Dir(Path.GetDirectoryName(p) ?? "");
            cpio.AddFile(p, data);
        }
        cpio.AddFile("init", Encoding.UTF8.GetBytes(initScript), 0x1ED);
        cpio.Finish();
    }

    /// <summary>Applets that get a symlink in the image. Debian's static busybox runs every applet from its shell
    /// without one (standalone shell, applets preferred), so only these are linked: the shell itself, what /init runs
    /// before /proc is mounted (the standalone shell re-executes /proc/self/exe), and common commands for scripts
    /// that exec by path. Each link costs emulated kernel time while the initramfs unpacks (all ~270 took seconds).</summary>
    private static readonly HashSet<string> LinkedAppletNames = new(StringComparer.Ordinal)
    {
        "sh", "ash", "mount", "umount", "mkdir", "insmod", "modprobe", "setsid", "cttyhack", "poweroff", "reboot", "halt",
        "cat", "echo", "ls", "ps", "kill", "ip", "ping", "nproc", "date", "dmesg", "sleep", "dd", "sync", "vi", "env",
    };

    /// <summary>The subset of APPLETS (paths as `busybox --list-full` prints them) that the image links.</summary>
    public static IReadOnlyList<string> LinkedApplets(IEnumerable<string> applets) =>
        applets.Where(a => LinkedAppletNames.Contains(Path.GetFileName(a.Trim()))).ToList();

    /// <summary>The applets of the host's static busybox.</summary>
    public static IReadOnlyList<string> HostApplets(string busyboxPath)
    {
        string list = CommandRunner.Capture(busyboxPath, "--list-full")
            ?? throw new GuestKitException($"cannot list the applets of {busyboxPath} (is busybox-static installed?)");
        return list.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>Writes DIR/initramfs.cpio and DIR/initramfs.cpio.gz from the same content.</summary>
    public static void WriteBoth(string dir, Action<Stream> write)
    {
        string cpio = Path.Combine(dir, "initramfs.cpio");
        using (var file = File.Create(cpio + ".tmp"))
            write(file);
        using (var input = File.OpenRead(cpio + ".tmp"))
        using (var gz = File.Create(cpio + ".gz.tmp"))
        using (var zip = new System.IO.Compression.GZipStream(gz, System.IO.Compression.CompressionLevel.SmallestSize))
            input.CopyTo(zip);
        File.Move(cpio + ".tmp", cpio, overwrite: true);
        File.Move(cpio + ".gz.tmp", cpio + ".gz", overwrite: true);
    }
}
