using Kiln.GuestKit;
using Kiln.Vmm;

namespace Kiln.Cli;

/// <summary>`kiln guest-kit build`: builds (or finds in the cache) a Linux kernel and initramfs for Kiln guests.</summary>
public static class GuestKitCommand
{
    private sealed class Settings
    {
        public string CacheRoot = GuestKitOptions.DefaultCacheRoot;
        public int Jobs = Math.Max(1, Environment.ProcessorCount);
        public bool Stock;
        public string? StockVersion;
    }

    private static readonly CliOptions<Settings> Options = new CliOptions<Settings>("guest-kit build", "[options]")
        .Value("--out|-o", "DIR", $"cache directory for kits (default {GuestKitOptions.DefaultCacheRoot})", (s, v) => s.CacheRoot = v)
        .Value("--jobs|-j", "N", "parallel compile jobs (default: the number of CPUs)",
            (s, v) => s.Jobs = Math.Max(1, (int)SizeParser.ParseNumber(v, "--jobs", 256)))
        .Flag("--stock", "use Debian's installed stock kernel and pack its virtio modules instead", s => s.Stock = true)
        .Value("--stock-version", "VER", "stock kernel version under /lib/modules (default: the newest)",
            (s, v) => { s.Stock = true; s.StockVersion = v; });

    public static string Help => Options.Help() + """


        Builds a Linux kernel from Debian's linux-source-6.1 with the config fragment and patches of guestkit/kernel/
        (they let it run on hosts whose KVM emulates guest ring 0), and a busybox initramfs whose /init prints
        KILN-INIT-READY and opens a shell on the console. Results are cached under DIR/<hash of all inputs>/ (vmlinux,
        bzImage, initramfs.cpio, initramfs.cpio.gz; DIR/latest points at the newest) and reused by later runs.
        Missing Debian packages are installed with apt-get when run as root.
        """;

    public static int Execute(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0] != "build")
            throw new UsageException("guest-kit: expected 'build' (see 'kiln guest-kit --help')");
        var settings = new Settings();
        Options.Parse(settings, args.Skip(1).ToList());
        var options = new GuestKitOptions(Path.GetFullPath(settings.CacheRoot), settings.Jobs);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var kit = settings.Stock
            ? StockKitBuilder.Build(options, settings.StockVersion, KilnLog.Info)
            : KitBuilder.Build(options, KilnLog.Info);
        var output = System.Console.Out;
        output.WriteLine(kit.FromCache
            ? $"guest-kit: cached kit in {kit.Directory}"
            : $"guest-kit: built {kit.Directory} in {sw.Elapsed.TotalSeconds:F0} s");
        output.WriteLine($"  kernel     {kit.Kernel}");
        if (kit.Bzimage is not null)
            output.WriteLine($"  bzImage    {kit.Bzimage}");
        output.WriteLine($"  initramfs  {kit.Initramfs} (gzip: {kit.InitramfsGzip})");
        string cmdline = settings.Stock ? GuestKitOptions.StockRecommendedCmdline : GuestKitOptions.RecommendedCmdline;
        output.WriteLine($"  boot with  {kit.RunCommand(cmdline)}");
        return 0;
    }
}
