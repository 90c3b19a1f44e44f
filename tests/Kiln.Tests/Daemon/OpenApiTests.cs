using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kiln.Tests.Daemon;

/// <summary>docs/api/openapi.json is kept in the repo by hand: it must describe every route the daemon maps.</summary>
public sealed partial class OpenApiTests
{
    [GeneratedRegex("app\\.Map(Get|Post|Put|Delete)\\(\"([^\"]+)\"")]
    private static partial Regex MapCall();

    [Fact]
    public void EveryMappedRouteIsDocumented()
    {
        // The routes live in one file per resource under src/Kiln.Daemon/Http/.
        string source = string.Concat(Directory.GetFiles(RepoPaths.Combine("src", "Kiln.Daemon"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(File.ReadAllText));
        using var doc = JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine("docs", "api", "openapi.json")));
        var paths = doc.RootElement.GetProperty("paths");
        var routes = MapCall().Matches(source).Select(m => (Method: m.Groups[1].Value.ToLowerInvariant(), Path: m.Groups[2].Value)).ToList();
        Assert.True(routes.Count >= 15, $"found only {routes.Count} routes");
        foreach (var (method, path) in routes)
        {
            Assert.True(paths.TryGetProperty(path, out var item), $"{path} is not in openapi.json");
            Assert.True(item.TryGetProperty(method, out _), $"{method.ToUpperInvariant()} {path} is not in openapi.json");
        }
    }
}
