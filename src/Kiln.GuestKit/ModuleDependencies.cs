namespace Kiln.GuestKit;

/// <summary>A kernel's modules.dep ("path: dep dep ..." per line, paths relative to /lib/modules/VERSION) and the
/// load order it implies.</summary>
public sealed class ModuleDependencies
{
    private readonly Dictionary<string, string[]> _deps = new(StringComparer.Ordinal);

    public ModuleDependencies(string modulesDep)
    {
        foreach (string line in modulesDep.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            _deps[line[..colon].Trim()] = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    public IEnumerable<string> Modules => _deps.Keys;

    /// <summary>The path of the module called NAME (file name without .ko and compression suffix; '-' and '_' are
    /// the same, as for modprobe), or null.</summary>
    public string? Find(string name)
    {
        string want = Normalize(name);
        return _deps.Keys.FirstOrDefault(p => Normalize(ModuleName(p)) == want);
    }

    /// <summary>ROOTS and everything they depend on, each after its dependencies (an insmod order).</summary>
    public IReadOnlyList<string> LoadOrder(IEnumerable<string> roots)
    {
        var order = new List<string>();
        var state = new Dictionary<string, bool>(StringComparer.Ordinal); // false: visiting, true: done
        void Visit(string module)
        {
            if (state.TryGetValue(module, out bool done))
            {
                if (!done)
                    throw new GuestKitException($"modules.dep has a dependency cycle through {module}");
                return;
            }
            state[module] = false;
            foreach (string dep in _deps.GetValueOrDefault(module, []))
                Visit(dep);
            state[module] = true;
            order.Add(module);
        }
        foreach (string root in roots)
            Visit(root);
        return order;
    }

    public static string ModuleName(string path)
    {
        string file = Path.GetFileName(path);
        int ko = file.IndexOf(".ko", StringComparison.Ordinal);
        return ko > 0 ? file[..ko] : file;
    }

    private static string Normalize(string name) => name.Replace('-', '_');
}
