namespace Kiln.GuestKit;

/// <summary>The /init shell scripts of the kit's initramfs. Each prints <see cref="ReadyMarker"/> once the system is
/// up, then gives the console a busybox shell. PID 1 stays the script: busybox `poweroff`, `reboot` and `halt` signal
/// PID 1 (USR2, TERM, USR1), which the traps turn into the forced system calls. Guest ring-0 code is slow on
/// emulating hosts, so the script starts as few processes as it can. `kiln.ready=reboot` (or `=poweroff`) on the kernel
/// command line ends the boot right after the marker instead of starting the shell (for tests).</summary>
public static class InitScript
{
    public const string ReadyMarker = "KILN-INIT-READY";

    // Each command that is not a shell builtin costs a fork (and maybe an exec) of emulated kernel work, about a
    // second on emulating hosts, so the start-up uses builtins where it can: one `mount -a` (the initramfs's
    // /etc/fstab) instead of a mount per filesystem, and the marker's CPU count and date read from sysfs with `read`.
    // busybox runs applets without their symlinks (standalone shell), so the image links only a few.
    private const string Mounts = """
        export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
        mount -a 2>/dev/null
        mkdir -p /dev/pts /dev/shm
        mount -t devpts devpts /dev/pts
        """;

    private const string ReadyAndShell = """
        trap 'poweroff -f' USR2
        trap 'halt -f' USR1
        trap 'reboot -f' TERM
        memtotal=0
        while read -r key value unit; do
            if [ "$key" = MemTotal: ]; then memtotal=$value; break; fi
        done < /proc/meminfo
        online=
        read -r online 2>/dev/null < /sys/devices/system/cpu/online
        case "$online" in
            0) ncpu=1 ;;
            0-*[!0-9]*|*,*|"") ncpu=$(nproc) ;;
            0-*) ncpu=$((${online#0-} + 1)) ;;
            *) ncpu=$(nproc) ;;
        esac
        now=
        read -r now 2>/dev/null < /sys/class/rtc/rtc0/since_epoch || now=$(date -u +%s)
        echo "KILN-INIT-READY nproc=$ncpu memtotal_kb=$memtotal date=$now"
        read -r cmdline < /proc/cmdline
        case " $cmdline " in
            *" kiln.ready=reboot "*) reboot -f ;;
            *" kiln.ready=poweroff "*) poweroff -f ;;
        esac
        ip link set lo up 2>/dev/null
        acpid -p /run/acpid.pid -l /dev/null 2>/dev/null
        while :; do
            setsid cttyhack sh -l < /dev/console > /dev/console 2>&1 &
            wait $!
            echo "kiln: the console shell exited; powering off"
            poweroff -f
        done
        """;

    /// <summary>What busybox acpid runs for the ACPI power button (started after the ready marker, so a boot that
    /// ends at the marker does not pay for its fork): `poweroff` signals PID 1, whose trap powers off. A shell script,
    /// since acpid starts its helpers with SIGCHLD ignored.</summary>
    public const string PowerButtonAction = "#!/bin/sh\nexec poweroff\n";

    /// <summary>/etc/fstab of the initramfs: what `mount -a` mounts at start-up (devpts follows once /dev/pts
    /// exists on the devtmpfs).</summary>
    public const string Fstab = """
        proc /proc proc defaults 0 0
        sysfs /sys sysfs defaults 0 0
        devtmpfs /dev devtmpfs defaults 0 0
        tmpfs /tmp tmpfs defaults 0 0
        tmpfs /run tmpfs defaults 0 0

        """;

    /// <summary>/init of the busybox initramfs for the kit kernel (everything built in).</summary>
    public static string Busybox { get; } = "#!/bin/sh\n" + Mounts + "\n" + ReadyAndShell + "\n";

    /// <summary>What the stock /init prints once its modules are loaded: the block devices and network interfaces
    /// the kernel then has (comma-separated names), so a test sees that the virtio drivers found their devices.</summary>
    public const string DevicesMarker = "KILN-STOCK-DEVICES";

    // Shell builtins only (no forks): the names under /sys/block and /sys/class/net.
    private const string ListDevices = """
        blk=
        for d in /sys/block/*; do [ -e "$d" ] && blk="$blk${blk:+,}${d##*/}"; done
        net=
        for d in /sys/class/net/*; do [ -e "$d" ] && net="$net${net:+,}${d##*/}"; done
        echo "KILN-STOCK-DEVICES block=$blk net=$net"
        """;

    /// <summary>/init of the initramfs for Debian's stock kernel: loads the given modules (paths in the image, in
    /// dependency order) before the usual start-up, and lists the devices they found.</summary>
    public static string Stock(IEnumerable<string> modulesInOrder)
    {
        var loads = string.Join('\n', modulesInOrder.Select(m => $"insmod {m} || echo \"kiln: insmod {m} failed\""));
        return "#!/bin/sh\n" + Mounts + "\n" + loads + "\n" + ListDevices + "\n" + ReadyAndShell + "\n";
    }
}
