using System.Security.Cryptography;
using System.Text;

namespace Kiln.GuestKit;

/// <summary>The name of a kit's cache directory: a hash over everything that decides what the build produces (the
/// config fragment, each patch's name and text in order, the init script, the versions of the kernel source,
/// busybox and the compiler, and the kit's own format version). Fields are length-prefixed, so moving text from one
/// field to the next changes the key.</summary>
public static class KitCacheKey
{
    /// <summary>Bump when the build recipe changes in a way the inputs below do not show.</summary>
    public const int FormatVersion = 1;

    public static string Compute(KitSources sources, string initScript, IReadOnlyDictionary<string, string> versions) =>
        Hash(sources, initScript, versions);

    /// <summary>The part of the key that decides the kernel alone (no init script, no busybox version): kits that
    /// differ only in their initramfs share one kernel build.</summary>
    public static string ComputeKernel(KitSources sources, IReadOnlyDictionary<string, string> versions) =>
        Hash(sources, null, versions.Where(kv => kv.Key != "busybox").ToDictionary(kv => kv.Key, kv => kv.Value));

    private static string Hash(KitSources sources, string? initScript, IReadOnlyDictionary<string, string> versions)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string field, string value)
        {
            foreach (string s in new[] { field, value })
            {
                byte[] bytes = Encoding.UTF8.GetBytes(s);
                hash.AppendData(BitConverter.GetBytes((long)bytes.Length));
                hash.AppendData(bytes);
            }
        }
        Add("format", FormatVersion.ToString());
        Add("config", sources.ConfigFragment);
        foreach (var patch in sources.Patches)
            Add("patch:" + patch.Name, patch.Text);
        if (initScript is not null)
            Add("init", initScript);
        foreach (var (name, version) in versions.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Add("version:" + name, version);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}
