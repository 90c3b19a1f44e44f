using System.Reflection;

namespace Kiln.GuestKit;

/// <summary>The kernel config fragment and patches, as kept in the repository under guestkit/kernel/ and embedded in
/// this assembly at build time.</summary>
public sealed record KitSources(string ConfigFragment, IReadOnlyList<KitPatch> Patches)
{
    private const string Prefix = "guestkit/kernel/";

    public static KitSources Embedded { get; } = Load();

    private static KitSources Load()
    {
        var assembly = typeof(KitSources).Assembly;
        string config = ReadResource(assembly, Prefix + "kiln.config");
        var patches = assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix + "patches/", StringComparison.Ordinal) && n.EndsWith(".patch", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n => new KitPatch(n[(Prefix.Length + "patches/".Length)..], ReadResource(assembly, n)))
            .ToList();
        return new KitSources(config, patches);
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"resource {name} is missing from {assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>One kernel patch (unified diff, applied with `patch -p1` in name order).</summary>
public sealed record KitPatch(string Name, string Text);
