namespace Kiln.Storage.Qcow2;

/// <summary>Where an overlay's backing file is: a relative name is relative to the overlay's directory (not the
/// working directory). Loops are detected by canonical path (symlinks resolved).</summary>
public static class BackingChain
{
    public const int MaxDepth = 256;

    public static string Resolve(string overlayPath, string backingName)
    {
        if (backingName.Contains("://") || backingName.StartsWith("json:", StringComparison.Ordinal))
            throw new ImageFormatException($"{overlayPath}: backing file '{backingName}' is not a local path");
        if (Path.IsPathRooted(backingName))
            return backingName;
        string dir = Path.GetDirectoryName(Path.GetFullPath(overlayPath)) ?? "/";
        return Path.Combine(dir, backingName);
    }

    public static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            var target = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true);
            if (target is not null)
                full = Path.GetFullPath(target.FullName);
            string? dir = Path.GetDirectoryName(full);
            if (dir is not null && Directory.Exists(dir))
            {
                var dirTarget = new DirectoryInfo(dir).ResolveLinkTarget(returnFinalTarget: true);
                if (dirTarget is not null)
                    full = Path.Combine(dirTarget.FullName, Path.GetFileName(full));
            }
        }
        catch (IOException)
        {
            // unresolvable link: the open that follows reports it
        }
        return full;
    }
}
