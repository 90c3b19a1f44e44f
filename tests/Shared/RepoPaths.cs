namespace Kiln.TestSupport;

/// <summary>Finds files of the checkout the tests were built from.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kiln.sln")))
                return dir.FullName;
        throw new InvalidOperationException("cannot find the repository root (Kiln.sln) above " + AppContext.BaseDirectory);
    }
}
