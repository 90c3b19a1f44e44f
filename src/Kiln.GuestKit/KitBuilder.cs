namespace Kiln.GuestKit;

/// <summary>`kiln guest-kit build`: the kit kernel plus the busybox initramfs, cached under a key of all inputs.</summary>
public static class KitBuilder
{
    private const string DoneStamp = "complete";

    /// <summary>Names the kernel inputs of a finished kit (<see cref="KitCacheKey.ComputeKernel"/>), so a kit that
    /// only changes the initramfs reuses that kernel instead of compiling it again.</summary>
    private const string KernelKeyFile = "kernel.key";

    private static readonly string[] KernelFiles = ["vmlinux", "bzImage", "config"];

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
        string kernelKey = KitCacheKey.ComputeKernel(sources, versions);
        string dir = Path.Combine(options.CacheRoot, key);
        var kit = new KitFiles(dir, Path.Combine(dir, "vmlinux"), Path.Combine(dir, "bzImage"),
            Path.Combine(dir, "initramfs.cpio"), Path.Combine(dir, "initramfs.cpio.gz"), FromCache: true);
        if (File.Exists(Path.Combine(dir, DoneStamp)))
        {
            if (!File.Exists(Path.Combine(dir, KernelKeyFile)))
                File.WriteAllText(Path.Combine(dir, KernelKeyFile), kernelKey + "\n"); // kits cached before the file existed
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
        var applets = BusyboxInitramfs.LinkedApplets(BusyboxInitramfs.HostApplets(HostPackages.BusyboxPath));
        BusyboxInitramfs.WriteBoth(dir, s => BusyboxInitramfs.Write(s, busybox, applets, InitScript.Busybox));
        string? sameKernel = FindKernel(options.CacheRoot, kernelKey, except: key);
        if (sameKernel is not null)
        {
            say($"guest-kit: reusing the kernel of {sameKernel} (same kernel inputs)");
            foreach (string f in KernelFiles)
                File.Copy(Path.Combine(sameKernel, f), Path.Combine(dir, f), overwrite: true);
        }
        else
        {
            string work = Path.Combine(dir, "build");
            new KernelBuilder(sources, runner, options.Jobs).Build(work, dir, say);
            Directory.Delete(work, recursive: true);
        }
        File.WriteAllText(Path.Combine(dir, KernelKeyFile), kernelKey + "\n");
        File.WriteAllText(Path.Combine(dir, DoneStamp), DateTime.UtcNow.ToString("O") + "\n");
        UpdateLatest(options.CacheRoot, "latest", key);
        return kit with { FromCache = false };
    }

    /// <summary>A finished kit under CACHEROOT whose kernel was built from the same inputs, or null.</summary>
    private static string? FindKernel(string cacheRoot, string kernelKey, string except)
    {
        foreach (string candidate in Directory.EnumerateDirectories(cacheRoot))
        {
            if (Path.GetFileName(candidate) == except || new DirectoryInfo(candidate).LinkTarget is not null
                || !File.Exists(Path.Combine(candidate, DoneStamp)))
                continue;
            string keyFile = Path.Combine(candidate, KernelKeyFile);
            if (File.Exists(keyFile) && File.ReadAllText(keyFile).Trim() == kernelKey
                && KernelFiles.All(f => File.Exists(Path.Combine(candidate, f))))
                return candidate;
        }
        return null;
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
