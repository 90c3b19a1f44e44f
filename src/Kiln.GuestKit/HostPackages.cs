namespace Kiln.GuestKit;

/// <summary>The Debian packages the kit build needs, their versions (part of the cache key), and installing the
/// missing ones with apt-get when running as root.</summary>
public static class HostPackages
{
    public const string KernelSourcePackage = "linux-source-6.1";
    public const string KernelSourceTarball = "/usr/src/linux-source-6.1.tar.xz";
    public const string BusyboxPath = "/bin/busybox";

    /// <summary>Packages for building the kit kernel and its initramfs.</summary>
    public static readonly string[] KitBuild =
        [KernelSourcePackage, "build-essential", "bc", "bison", "flex", "libelf-dev", "libssl-dev", "xz-utils", "busybox-static", "cpio"];

    /// <summary>Packages for the stock-kernel kit.</summary>
    public static readonly string[] StockBuild = ["linux-image-amd64", "busybox-static", "xz-utils", "kmod"];

    /// <summary>The installed version of a package, or null.</summary>
    public static string? Version(string package)
    {
        string? v = CommandRunner.Capture("dpkg-query", "-W", "-f=${Status}|${Version}", package);
        if (v is null || !v.StartsWith("install ok installed|", StringComparison.Ordinal))
            return null;
        return v[(v.IndexOf('|') + 1)..].Trim();
    }

    /// <summary>Installs whatever is missing (apt-get, as root), or throws naming the packages.</summary>
    public static void Ensure(IEnumerable<string> packages, Action<string> say)
    {
        var missing = packages.Where(p => Version(p) is null).ToList();
        if (missing.Count == 0)
            return;
        string list = string.Join(' ', missing);
        if (Environment.UserName != "root" || CommandRunner.Capture("which", "apt-get") is null)
            throw new GuestKitException($"missing packages: {list} (install them: apt-get install -y {list})");
        say($"guest-kit: installing {list}");
        string log = Path.Combine(Path.GetTempPath(), "kiln-guest-kit-apt.log");
        File.WriteAllText(log, "");
        var runner = new CommandRunner(log);
        runner.Run("apt-get install", "/", "env", ["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends", .. missing]);
    }

    /// <summary>The first line of `gcc --version`, which goes into the cache key.</summary>
    public static string CompilerVersion() =>
        (CommandRunner.Capture("gcc", "--version") ?? "unknown").Split('\n')[0].Trim();
}
