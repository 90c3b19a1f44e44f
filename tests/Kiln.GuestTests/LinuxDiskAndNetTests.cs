using System.Globalization;
using System.Security.Cryptography;
using Kiln.GuestTests.Support;
using Xunit.Abstractions;

namespace Kiln.GuestTests;

/// <summary>One Linux boot that uses the devices the way a real guest does: its root filesystem is an ext4 image
/// (`mkfs.ext4 -d`) on virtio-blk, it writes a file there; it mounts a second disk, a qcow2 overlay (`kiln img create
/// -b`) over a raw ext4 base, and writes a file into it; it pings the host through a tap that lives in a network
/// namespace the test creates; then it powers off. The host then finds both files (debugfs), `qemu-img check` finds
/// the overlay clean, and the base is byte for byte unchanged. SLOW (one Linux boot).</summary>
[Trait("Category", "SlowLinux")]
public sealed class LinuxDiskAndNetTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-linux-disk-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>/init of the root image: runs as PID 1 straight from /dev/vda (no initramfs).</summary>
    private const string RootInit = """
        #!/bin/sh
        export PATH=/bin:/sbin:/usr/bin:/usr/sbin
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        while read -r dev mnt fstype rest; do
            [ "$mnt" = / ] && echo "KILN-ROOT $dev $fstype"
        done < /proc/mounts
        echo "written by the Linux guest" > /guest-wrote.txt
        if mount -t ext4 /dev/vdb /mnt; then
            echo "written into the overlay" > /mnt/overlay-wrote.txt
            umount /mnt && echo KILN-OVERLAY-WRITTEN
        fi
        ip link set lo up
        ip link set eth0 up
        ip addr add 10.0.2.15/24 dev eth0
        ping -c 3 -W 10 10.0.2.1 && echo KILN-PING-OK
        mount -o remount,ro / && echo KILN-ROOT-READONLY
        poweroff -f
        """;

    private static ProcessRunner.Result Run(string file, params string[] args) =>
        ProcessRunner.Run(file, args, TimeSpan.FromMinutes(2));

    private static void MustRun(string file, params string[] args)
    {
        var r = Run(file, args);
        Assert.True(r.ExitCode == 0, $"{file} {string.Join(' ', args)} failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
    }

    /// <summary>An ext4 image of SIZE MiB made with `mkfs.ext4 -d` from a directory FILL populates.</summary>
    private string MakeExt4(string name, int sizeMiB, Action<string> fill)
    {
        string tree = Path.Combine(_dir, name + ".d");
        Directory.CreateDirectory(tree);
        fill(tree);
        string image = Path.Combine(_dir, name);
        MustRun("mkfs.ext4", "-q", "-F", "-d", tree, image, $"{sizeMiB}M");
        return image;
    }

    /// <summary>The host's static busybox with a symlink per applet, /init, and the mount points.</summary>
    private static void FillRoot(string tree)
    {
        foreach (var d in new[] { "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "mnt", "tmp" })
            Directory.CreateDirectory(Path.Combine(tree, d));
        File.Copy(global::Kiln.GuestKit.HostPackages.BusyboxPath, Path.Combine(tree, "bin/busybox"));
        foreach (var applet in global::Kiln.GuestKit.BusyboxInitramfs.HostApplets(global::Kiln.GuestKit.HostPackages.BusyboxPath))
        {
            string rel = applet.TrimStart('/');
            if (rel.Length == 0 || rel == "bin/busybox" || rel == "init" || rel == "linuxrc")
                continue;
            string link = Path.Combine(tree, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            if (!File.Exists(link))
                File.CreateSymbolicLink(link, "/bin/busybox");
        }
        string init = Path.Combine(tree, "init");
        File.WriteAllText(init, RootInit.Replace("\r\n", "\n") + "\n");
        MustRun("chmod", "755", init);
    }

    private static string DebugfsCat(string image, string file) => Run("debugfs", "-R", $"cat {file}", image).Stdout;

    private static ProcessRunner.Result Ip(params string[] args) => ProcessRunner.Run("ip", args, TimeSpan.FromSeconds(10));

    [KvmFact]
    public void RootOnVirtioBlkWritesPingsTheHostAndLeavesTheQcow2BaseUnchanged()
    {
        string root = MakeExt4("root.raw", 64, FillRoot);
        string baseImage = MakeExt4("base.raw", 16, tree => File.WriteAllText(Path.Combine(tree, "base.txt"), "base\n"));
        byte[] baseHash = SHA256.HashData(File.ReadAllBytes(baseImage));
        string overlay = Path.Combine(_dir, "overlay.qcow2");
        var create = Support.Kiln.Run(["img", "create", "-f", "qcow2", "-b", baseImage, "-F", "raw", overlay]);
        Assert.True(create.ExitCode == 0, create.Stdout + create.Stderr);

        string ns = "ktl" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        Assert.Equal(0, Ip("netns", "add", ns).ExitCode);
        StreamingProcess.Result r;
        try
        {
            Assert.Equal(0, Ip("-n", ns, "tuntap", "add", "dev", "kt0", "mode", "tap").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "addr", "add", "10.0.2.1/24", "dev", "kt0").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "link", "set", "kt0", "up").ExitCode);
            Assert.Equal(0, Ip("-n", ns, "link", "set", "lo", "up").ExitCode);
            r = StreamingProcess.Run("ip",
            [
                "netns", "exec", ns, "dotnet", Support.Kiln.CliDll, "run", "--kernel", LinuxKit.Kernel,
                "--memory", "256M", "--disk", root + ",format=raw", "--disk", overlay, "--net", "tap=kt0", "--stats",
                "--no-reboot", "--cmdline", LinuxKit.Cmdline("root=/dev/vda rootfstype=ext4 rootwait rw init=/init"),
            ], TimeSpan.FromMinutes(25), LinuxKit.IsPanic);
            log.WriteLine($"exit {r.ExitCode} in {r.Elapsed.TotalSeconds:F1} s\n--- stdout\n{r.Stdout}\n--- stderr\n{r.Stderr}");
        }
        finally
        {
            Ip("netns", "del", ns);
        }

        Assert.False(r.TimedOut, "the guest did not power off in time");
        Assert.DoesNotContain("Kernel panic", r.Stdout);
        Assert.Contains("KILN-ROOT /dev/root ext4", r.Stdout);
        Assert.Contains("KILN-OVERLAY-WRITTEN", r.Stdout);
        Assert.Contains("KILN-PING-OK", r.Stdout);
        Assert.Contains("KILN-ROOT-READONLY", r.Stdout);
        Assert.Equal(0, r.ExitCode);

        Assert.Contains("written by the Linux guest", DebugfsCat(root, "/guest-wrote.txt"));
        MustRun("e2fsck", "-fn", root);
        var check = Run("qemu-img", "check", overlay);
        Assert.True(check.ExitCode == 0, $"qemu-img check:\n{check.Stdout}\n{check.Stderr}");
        Assert.Equal(baseHash, SHA256.HashData(File.ReadAllBytes(baseImage)));
        string merged = Path.Combine(_dir, "merged.raw");
        MustRun("qemu-img", "convert", "-O", "raw", overlay, merged);
        Assert.Contains("written into the overlay", DebugfsCat(merged, "/overlay-wrote.txt"));
        Assert.Contains("base", DebugfsCat(merged, "/base.txt"));
        Assert.DoesNotContain("written into the overlay", DebugfsCat(baseImage, "/overlay-wrote.txt"));
    }
}
