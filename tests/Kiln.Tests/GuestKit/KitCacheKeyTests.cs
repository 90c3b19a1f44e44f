using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class KitCacheKeyTests
{
    private static readonly KitSources Sources = new("CONFIG_SMP=y\n", [new KitPatch("0001-a.patch", "--- a\n+++ b\n")]);
    private static readonly Dictionary<string, string> Versions = new() { ["linux-source"] = "6.1.192-2", ["gcc"] = "12" };

    private static string Key(KitSources? s = null, string init = "#!/bin/sh\n", Dictionary<string, string>? v = null) =>
        KitCacheKey.Compute(s ?? Sources, init, v ?? Versions);

    [Fact]
    public void SameInputsSameKey()
    {
        Assert.Equal(Key(), Key());
        Assert.Matches("^[0-9a-f]{16}$", Key());
        var reordered = new Dictionary<string, string> { ["gcc"] = "12", ["linux-source"] = "6.1.192-2" };
        Assert.Equal(Key(), Key(v: reordered));
    }

    [Fact]
    public void KernelKeyIgnoresTheInitramfsButNotTheKernelInputs()
    {
        var withBusybox = new Dictionary<string, string>(Versions) { ["busybox"] = "1.35" };
        string kernel = KitCacheKey.ComputeKernel(Sources, Versions);
        Assert.Equal(kernel, KitCacheKey.ComputeKernel(Sources, withBusybox));
        Assert.Equal(kernel, KitCacheKey.ComputeKernel(Sources, new Dictionary<string, string>(withBusybox) { ["busybox"] = "1.36" }));
        Assert.NotEqual(kernel, KitCacheKey.ComputeKernel(Sources with { ConfigFragment = "CONFIG_SMP=n\n" }, Versions));
        Assert.NotEqual(kernel, KitCacheKey.ComputeKernel(Sources with { Patches = [] }, Versions));
        Assert.NotEqual(kernel, KitCacheKey.ComputeKernel(Sources, new Dictionary<string, string> { ["linux-source"] = "6.1.193-1", ["gcc"] = "12" }));
        Assert.NotEqual(kernel, Key());
    }

    [Fact]
    public void EveryInputChangesTheKey()
    {
        string baseline = Key();
        string[] others =
        [
            Key(Sources with { ConfigFragment = "CONFIG_SMP=n\n" }),
            Key(Sources with { Patches = [new KitPatch("0001-a.patch", "--- a\n+++ c\n")] }),
            Key(Sources with { Patches = [new KitPatch("0002-a.patch", "--- a\n+++ b\n")] }),
            Key(Sources with { Patches = [] }),
            Key(init: "#!/bin/sh\necho\n"),
            Key(v: new() { ["linux-source"] = "6.1.193-1", ["gcc"] = "12" }),
            Key(v: new() { ["linux-source"] = "6.1.192-2" }),
        ];
        Assert.All(others, k => Assert.NotEqual(baseline, k));
        Assert.Equal(others.Length, others.Distinct().Count());
    }

    [Fact]
    public void FieldBoundariesMatter()
    {
        var a = new KitSources("AB", [new KitPatch("p", "C")]);
        var b = new KitSources("A", [new KitPatch("p", "BC")]);
        Assert.NotEqual(Key(a), Key(b));
    }

    [Fact]
    public void EmbeddedSourcesAreTheRepositoryFiles()
    {
        var embedded = KitSources.Embedded;
        Assert.Equal(File.ReadAllText(RepoPaths.Combine("guestkit", "kernel", "kiln.config")), embedded.ConfigFragment);
        var files = Directory.GetFiles(RepoPaths.Combine("guestkit", "kernel", "patches"), "*.patch")
            .Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(files, embedded.Patches.Select(p => p.Name).ToList());
        Assert.NotEmpty(files);
    }
}
