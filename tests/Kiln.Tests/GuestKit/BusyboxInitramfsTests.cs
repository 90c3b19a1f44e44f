using System.Text;
using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class BusyboxInitramfsTests
{
    [Fact]
    public void ImageHasBusyboxAppletLinksConsoleAndInit()
    {
        var ms = new MemoryStream();
        byte[] fakeBusybox = Encoding.ASCII.GetBytes("not really busybox");
        BusyboxInitramfs.Write(ms, fakeBusybox, ["bin/sh", "sbin/poweroff", "usr/bin/nproc", "linuxrc", "bin/busybox"],
            InitScript.Busybox, [("/lib/modules/virtio.ko", [1, 2, 3])]);
        using var cpio = new CpioTool();
        string listing = cpio.List(ms.ToArray());
        Assert.Contains("bin/sh -> /bin/busybox", listing);
        Assert.Contains("sbin/poweroff -> /bin/busybox", listing);
        Assert.Contains("usr/bin/nproc -> /bin/busybox", listing);
        Assert.DoesNotContain("linuxrc", listing);
        Assert.Matches(@"(?m)^crw------- .* dev/console$", listing);
        Assert.Matches(@"(?m)^-rwxr-xr-x .* init$", listing);
        Assert.Matches(@"(?m)^drwxrwxrwx .* tmp$", listing.Replace("drwxrwxrwt", "drwxrwxrwx"));
        cpio.Extract(ms.ToArray());
        Assert.Equal(fakeBusybox, File.ReadAllBytes(Path.Combine(cpio.Directory, "bin/busybox")));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(cpio.Directory, "lib/modules/virtio.ko")));
        string init = File.ReadAllText(Path.Combine(cpio.Directory, "init"));
        Assert.StartsWith("#!/bin/sh\n", init);
        Assert.Contains(InitScript.ReadyMarker, init);
    }

    [Fact]
    public void OnlyTheCoreAppletsAreLinked()
    {
        var linked = BusyboxInitramfs.LinkedApplets(["/bin/sh", "/bin/mount", "/usr/bin/nproc", "/usr/bin/xxd", "/sbin/fdisk", "/bin/busybox"]);
        Assert.Equal(["/bin/sh", "/bin/mount", "/usr/bin/nproc"], linked);
    }

    /// <summary>The kit image (a stand-in busybox, the kit's /init) unpacked by the real cpio.</summary>
    private static CpioTool ExtractKitImage()
    {
        var ms = new MemoryStream();
        BusyboxInitramfs.Write(ms, [1], ["bin/sh"], InitScript.Busybox);
        var cpio = new CpioTool();
        cpio.Extract(ms.ToArray());
        return cpio;
    }

    [Fact]
    public void ImageHasAnFstabForMountAll()
    {
        using var cpio = ExtractKitImage();
        string fstab = File.ReadAllText(Path.Combine(cpio.Directory, "etc/fstab"));
        Assert.Contains("proc /proc proc", fstab);
        Assert.Contains("devtmpfs /dev devtmpfs", fstab);
        Assert.Contains("mount -a", InitScript.Busybox);
    }

    [Fact]
    public void ThePowerButtonHelperIsAnExecutableScriptThatAcpidFinds()
    {
        using var cpio = ExtractKitImage();
        // busybox acpid maps the power button's event to /etc/acpi/PWRF/00000080 and runs that file.
        string helper = Path.Combine(cpio.Directory, "etc/acpi/PWRF/00000080");
        Assert.StartsWith("#!/bin/sh\n", File.ReadAllText(helper));
        Assert.Contains("poweroff", File.ReadAllText(helper));
        if (!OperatingSystem.IsWindows())
            Assert.True((File.GetUnixFileMode(helper) & UnixFileMode.UserExecute) != 0, "the helper is not executable");
        // acpid starts after the marker, so a boot that ends there does not wait for its fork.
        Assert.True(InitScript.Busybox.IndexOf("acpid", StringComparison.Ordinal)
                    > InitScript.Busybox.IndexOf("KILN-INIT-READY", StringComparison.Ordinal));
    }

    [Fact]
    public void StockInitLoadsModulesInTheGivenOrder()
    {
        string init = InitScript.Stock(["/lib/modules/virtio_ring.ko", "/lib/modules/virtio.ko"]);
        int ring = init.IndexOf("insmod /lib/modules/virtio_ring.ko", StringComparison.Ordinal);
        int virtio = init.IndexOf("insmod /lib/modules/virtio.ko", StringComparison.Ordinal);
        Assert.True(ring > 0 && virtio > ring);
        Assert.True(virtio < init.IndexOf(InitScript.ReadyMarker, StringComparison.Ordinal));
    }
}
