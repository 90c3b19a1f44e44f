namespace Kiln.GuestKit;

/// <summary>`kiln guest-kit build --stock`: Debian's installed linux-image-amd64 kernel with an initramfs holding its
/// virtio modules (decompressed, signatures stripped, loaded by /init with insmod in dependency order) and busybox. The kernel is also
/// unpacked to an ELF vmlinux, which boots without the (emulated, slow) decompressor.</summary>
public static class StockKitBuilder
{
    /// <summary>The modules /init loads, in this order; their dependencies come along from modules.dep. crc32c_generic
    /// is ext4's and jbd2's soft dependency (crypto-crc32c), which modules.dep does not list: without it ext4 cannot
    /// mount. The generic one, because crc32c-intel runs SSE4.2 CRC32 at ring 0, which emulating hosts may lack.</summary>
    public static readonly string[] WantedModules =
    [
        "virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng",
        "vmw_vsock_virtio_transport", "crc32c_generic", "ext4",
    ];

    public static KitFiles Build(GuestKitOptions options, string? kernelVersion, Action<string> say)
    {
        HostPackages.Ensure(HostPackages.StockBuild, say);
        string version = kernelVersion ?? NewestInstalledKernel();
        string modulesDir = Path.Combine("/lib/modules", version);
        string vmlinuz = Path.Combine("/boot", "vmlinuz-" + version);
        if (!File.Exists(vmlinuz) || !File.Exists(Path.Combine(modulesDir, "modules.dep")))
            throw new GuestKitException($"kernel {version} is not fully installed ({vmlinuz}, {modulesDir}/modules.dep)");
        var deps = new ModuleDependencies(File.ReadAllText(Path.Combine(modulesDir, "modules.dep")));
        var roots = WantedModules.Select(deps.Find).OfType<string>().ToList();
        var order = deps.LoadOrder(roots);
        string init = InitScript.Stock(order.Select(ImagePath));
        var versions = new Dictionary<string, string>
        {
            ["kernel"] = version,
            ["recipe"] = "3", // 2: also unpacks vmlinux; 3: modules without signatures
            ["kernel-image"] = new FileInfo(vmlinuz).Length + "@" + File.GetLastWriteTimeUtc(vmlinuz).Ticks,
            ["busybox"] = HostPackages.Version("busybox-static") ?? "?",
        };
        string key = "stock-" + version + "-" + KitCacheKey.Compute(new KitSources("", []), init, versions);
        string dir = Path.Combine(options.CacheRoot, key);
        var kit = new KitFiles(dir, Path.Combine(dir, "vmlinux"), Path.Combine(dir, "vmlinuz"), Path.Combine(dir, "initramfs.cpio"),
            Path.Combine(dir, "initramfs.cpio.gz"), FromCache: true);
        if (File.Exists(Path.Combine(dir, "complete")))
        {
            KitBuilder.UpdateLatest(options.CacheRoot, "latest-stock", key);
            return kit;
        }
        Directory.CreateDirectory(dir);
        say($"guest-kit: packing {order.Count} modules of {version} into {dir}");
        var files = order.Select(m => (ImagePath(m), ModuleSignature.Strip(ReadModule(Path.Combine(modulesDir, m))))).ToList();
        byte[] busybox = File.ReadAllBytes(HostPackages.BusyboxPath);
        var applets = BusyboxInitramfs.LinkedApplets(BusyboxInitramfs.HostApplets(HostPackages.BusyboxPath));
        BusyboxInitramfs.WriteBoth(dir, s => BusyboxInitramfs.Write(s, busybox, applets, init, files));
        File.Copy(vmlinuz, kit.Bzimage!, overwrite: true);
        BzImagePayload.Extract(vmlinuz, kit.Kernel, new CommandRunner(Path.Combine(dir, "build.log")));
        File.WriteAllText(Path.Combine(dir, "complete"), DateTime.UtcNow.ToString("O") + "\n");
        KitBuilder.UpdateLatest(options.CacheRoot, "latest-stock", key);
        return kit with { FromCache = false };
    }

    /// <summary>Where a module goes in the image: uncompressed, under /lib/modules.</summary>
    internal static string ImagePath(string modulePath) => "/lib/modules/" + ModuleDependencies.ModuleName(modulePath) + ".ko";

    private static byte[] ReadModule(string path)
    {
        if (path.EndsWith(".ko", StringComparison.Ordinal))
            return File.ReadAllBytes(path);
        string tool = path.EndsWith(".xz", StringComparison.Ordinal) ? "xz"
            : path.EndsWith(".zst", StringComparison.Ordinal) ? "zstd"
            : path.EndsWith(".gz", StringComparison.Ordinal) ? "gzip"
            : throw new GuestKitException($"unknown module compression: {path}");
        string tmp = Path.Combine(Path.GetTempPath(), $"kiln-module-{Environment.ProcessId}.ko");
        try
        {
            var runner = new CommandRunner(Path.Combine(Path.GetTempPath(), "kiln-guest-kit-modules.log"));
            runner.Run($"decompressing {path}", "/", "sh", "-c", $"{tool} -dc \"$0\" > \"$1\"", path, tmp);
            return File.ReadAllBytes(tmp);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static string NewestInstalledKernel()
    {
        var versions = Directory.Exists("/lib/modules")
            ? Directory.GetDirectories("/lib/modules").Select(Path.GetFileName).OfType<string>()
                .Where(v => File.Exists(Path.Combine("/boot", "vmlinuz-" + v))).Order(StringComparer.Ordinal).ToList()
            : [];
        return versions.LastOrDefault() ?? throw new GuestKitException("no installed kernel with modules under /lib/modules");
    }
}
