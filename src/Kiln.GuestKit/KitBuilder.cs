namespace Kiln.GuestKit;

/// <summary>`kiln guest-kit build`: the kit kernel plus the busybox initramfs, cached under a key of all inputs.</summary>
public static class KitBuilder
{
    private const string DoneStamp = "complete";

    public static KitFiles Build(GuestKitOptions options, Action<string> say)
    {
        HostPackages.Ensure(HostPackages.KitBuild, say);
        var sources = KitSources.Embedded;
        var versions = new Dictionary<string, string>
        {
            ["linux-source"] = HostPackages.Version(HostPackages.KernelSourcePackage) ?? "?",
            ["busybox"] = HostPackages.Version("busybox-static") ?? "?",
            ["gcc"] = HostPackages.CompilerVersion(),
        };
        string key = KitCacheKey.Compute(sources, InitScript.Busybox, versions);
        string dir = Path.Combine(options.CacheRoot, key);
        var kit = new KitFiles(dir, Path.Combine(dir, "vmlinux"), Path.Combine(dir, "bzImage"),
            Path.Combine(dir, "initramfs.cpio"), Path.Combine(dir, "initramfs.cpio.gz"), FromCache: true);
        if (File.Exists(Path.Combine(dir, DoneStamp)))
        {
            UpdateLatest(options.CacheRoot, "latest", key);
            return kit;
        }

        Directory.CreateDirectory(dir);
        using var buildLock = BuildLock.Acquire(dir, say);
        if (File.Exists(Path.Combine(dir, DoneStamp)))
        {
            UpdateLatest(options.CacheRoot, "latest", key);
            return kit; // another build finished it while we waited
        }
        string log = Path.Combine(dir, "build.log");
        File.WriteAllText(log, $"kiln guest-kit build {key}\n");
        var runner = new CommandRunner(log);
        say($"guest-kit: building the busybox initramfs in {dir}");
        byte[] busybox = File.ReadAllBytes(HostPackages.BusyboxPath);
        var applets = BusyboxInitramfs.HostApplets(HostPackages.BusyboxPath);
        BusyboxInitramfs.WriteBoth(dir, s => BusyboxInitramfs.Write(s, busybox, applets, InitScript.Busybox));
        string work = Path.Combine(dir, "build");
        new KernelBuilder(sources, runner, options.Jobs).Build(work, dir, say);
        Directory.Delete(work, recursive: true);
        File.WriteAllText(Path.Combine(dir, DoneStamp), DateTime.UtcNow.ToString("O") + "\n");
        UpdateLatest(options.CacheRoot, "latest", key);
        return kit with { FromCache = false };
    }

    /// <summary>Points CACHEROOT/NAME at the newest build, so scripts need not know the hash.</summary>
    internal static void UpdateLatest(string cacheRoot, string name, string target)
    {
        string link = Path.Combine(cacheRoot, name);
        if (new FileInfo(link).LinkTarget is not null)
            File.Delete(link);
        File.CreateSymbolicLink(link, target);
    }
}
