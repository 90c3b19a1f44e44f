namespace Kiln.GuestKit;

/// <summary>The /init shell scripts of the kit's initramfs. Each prints <see cref="ReadyMarker"/> once the system is
/// up, then gives the console a busybox shell. PID 1 stays the script: busybox `poweroff`, `reboot` and `halt` signal
/// PID 1 (USR2, TERM, USR1), which the traps turn into the forced system calls. Guest ring-0 code is slow on
/// emulating hosts, so the script starts as few processes as it can. `kiln.ready=reboot` (or `=poweroff`) on the kernel
/// command line ends the boot right after the marker instead of starting the shell (for tests).</summary>
public static class InitScript
{
    public const string ReadyMarker = "KILN-INIT-READY";

    private const string Mounts = """
        export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t devtmpfs devtmpfs /dev 2>/dev/null
        mkdir -p /dev/pts /dev/shm
        mount -t devpts devpts /dev/pts
        mount -t tmpfs tmpfs /tmp
        mount -t tmpfs tmpfs /run
        """;

    private const string ReadyAndShell = """
        trap 'poweroff -f' USR2
        trap 'halt -f' USR1
        trap 'reboot -f' TERM
        hostname kiln
        ip link set lo up 2>/dev/null
        memtotal=0
        while read -r key value unit; do
            if [ "$key" = MemTotal: ]; then memtotal=$value; break; fi
        done < /proc/meminfo
        echo "KILN-INIT-READY nproc=$(nproc) memtotal_kb=$memtotal date=$(date -u +%s)"
        read -r cmdline < /proc/cmdline
        case " $cmdline " in
            *" kiln.ready=reboot "*) reboot -f ;;
            *" kiln.ready=poweroff "*) poweroff -f ;;
        esac
        while :; do
            setsid cttyhack sh -l < /dev/console > /dev/console 2>&1 &
            wait $!
            echo "kiln: the console shell exited; powering off"
            poweroff -f
        done
        """;

    /// <summary>/init of the busybox initramfs for the kit kernel (everything built in).</summary>
    public static string Busybox { get; } = "#!/bin/sh\n" + Mounts + "\n" + ReadyAndShell + "\n";

    /// <summary>/init of the initramfs for Debian's stock kernel: loads the given modules (paths in the image, in
    /// dependency order) before the usual start-up.</summary>
    public static string Stock(IEnumerable<string> modulesInOrder)
    {
        var loads = string.Join('\n', modulesInOrder.Select(m => $"insmod {m} || echo \"kiln: insmod {m} failed\""));
        return "#!/bin/sh\n" + Mounts + "\n" + loads + "\n" + ReadyAndShell + "\n";
    }
}
