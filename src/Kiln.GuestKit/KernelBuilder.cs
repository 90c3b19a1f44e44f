namespace Kiln.GuestKit;

/// <summary>Builds the kit kernel in a scratch directory: unpacks Debian's linux-source tarball, applies the kit's
/// patches, configures `make tinyconfig` plus the fragment, and builds vmlinux and bzImage at low priority.</summary>
public sealed class KernelBuilder(KitSources sources, CommandRunner runner, int jobs)
{
    /// <summary>Builds into WORKDIR and copies vmlinux, bzImage and the final config to OUTDIR.</summary>
    public void Build(string workDir, string outDir, Action<string> say)
    {
        if (Directory.Exists(workDir))
            Directory.Delete(workDir, recursive: true);
        Directory.CreateDirectory(workDir);
        say($"guest-kit: unpacking {HostPackages.KernelSourceTarball}");
        runner.Run("unpacking the kernel source", workDir, "tar", "-xf", HostPackages.KernelSourceTarball, "--strip-components=1");
        foreach (var patch in sources.Patches)
        {
            string file = Path.Combine(workDir, "kiln-" + patch.Name);
            File.WriteAllText(file, patch.Text);
            runner.Run($"applying patch {patch.Name}", workDir, "patch", "-p1", "--forward", "--batch", "-i", file);
        }
        string fragment = Path.Combine(workDir, "kiln.config");
        File.WriteAllText(fragment, sources.ConfigFragment);
        runner.Run("make tinyconfig", workDir, "make", "ARCH=x86_64", "tinyconfig");
        runner.Run("merging kiln.config", workDir, Path.Combine(workDir, "scripts/kconfig/merge_config.sh"), "-m", ".config", fragment);
        runner.Run("make olddefconfig", workDir, "make", "ARCH=x86_64", "olddefconfig");
        var bad = KernelConfigCheck.Mismatches(sources.ConfigFragment, File.ReadAllText(Path.Combine(workDir, ".config")));
        if (bad.Count > 0)
            throw new GuestKitException($"the kernel config lost options of kiln.config: {string.Join(", ", bad)}; see the log: {runner.LogPath}");
        say($"guest-kit: compiling the kernel (make -j{jobs}, nice 10; several CPU-minutes); log: {runner.LogPath}");
        runner.Run("compiling the kernel", workDir, "nice", "-n", "10", "make", "ARCH=x86_64", $"-j{jobs}", "vmlinux", "bzImage");
        File.Copy(Path.Combine(workDir, "vmlinux"), Path.Combine(outDir, "vmlinux"), overwrite: true);
        File.Copy(Path.Combine(workDir, "arch/x86/boot/bzImage"), Path.Combine(outDir, "bzImage"), overwrite: true);
        File.Copy(Path.Combine(workDir, ".config"), Path.Combine(outDir, "config"), overwrite: true);
    }
}
