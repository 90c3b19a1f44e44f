using System.Text.Json.Serialization.Metadata;
using System.Text.Json;

namespace Kiln.Daemon;

/// <summary>The daemon's state directory: definitions in domains/NAME.json, running VMMs in run/NAME.json (pid and
/// control socket, for re-attaching), the last end of each domain in run/NAME.last.json, console logs in
/// log/NAME.log. Every file is written atomically: a temporary file in the same directory, fsync, rename.</summary>
public sealed class DomainStore
{
    private readonly Microsoft.Extensions.Logging.ILogger? _log;

    public DomainStore(string root, Microsoft.Extensions.Logging.ILogger? log = null)
    {
        _log = log;
        Root = root;
        Directory.CreateDirectory(DomainsDir);
        Directory.CreateDirectory(RunDir);
        Directory.CreateDirectory(LogDir);
        foreach (var dir in new[] { root, DomainsDir, RunDir, LogDir })
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Leftovers of writes that never reached their rename.
        foreach (var dir in new[] { DomainsDir, RunDir })
            foreach (var tmp in Directory.EnumerateFiles(dir, "*.tmp"))
                File.Delete(tmp);
    }

    public string Root { get; }
    public string DomainsDir => Path.Combine(Root, "domains");
    public string RunDir => Path.Combine(Root, "run");
    public string LogDir => Path.Combine(Root, "log");

    public string SocketPath(string name) => Path.Combine(RunDir, name + ".sock");
    public string LogPath(string name) => Path.Combine(LogDir, name + ".log");

    public IEnumerable<DomainDefinition> LoadAll()
    {
        foreach (var file in Directory.EnumerateFiles(DomainsDir, "*.json").Order(StringComparer.Ordinal))
        {
            DomainDefinition? d = null;
            try
            {
                d = DomainCodec.FromJson(File.ReadAllText(file));
            }
            catch (DomainFormatException e)
            {
                if (_log is not null)
                    Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(_log, "ignoring {File}: {Message}", file, e.Message);
            }
            if (d is not null)
                yield return d;
        }
    }

    public void Save(DomainDefinition d) => WriteAtomically(Path.Combine(DomainsDir, d.Name + ".json"), DomainCodec.ToJson(d));

    public void Delete(string name)
    {
        File.Delete(Path.Combine(DomainsDir, name + ".json"));
        File.Delete(Path.Combine(RunDir, name + ".json"));
        File.Delete(Path.Combine(RunDir, name + ".last.json"));
    }

    public RuntimeRecord? LoadRuntime(string name) => Load(Path.Combine(RunDir, name + ".json"), DaemonJsonContext.Default.RuntimeRecord);

    public void SaveRuntime(string name, RuntimeRecord record) =>
        WriteAtomically(Path.Combine(RunDir, name + ".json"), JsonSerializer.Serialize(record, DaemonJsonContext.Default.RuntimeRecord));

    public void DeleteRuntime(string name) => File.Delete(Path.Combine(RunDir, name + ".json"));

    public LastExitRecord? LoadLastExit(string name) => Load(Path.Combine(RunDir, name + ".last.json"), DaemonJsonContext.Default.LastExitRecord);

    public void SaveLastExit(string name, LastExitRecord record) =>
        WriteAtomically(Path.Combine(RunDir, name + ".last.json"), JsonSerializer.Serialize(record, DaemonJsonContext.Default.LastExitRecord));

    private static T? Load<T>(string path, JsonTypeInfo<T> type) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), type);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            return null;
        }
    }

    /// <summary>Replaces <paramref name="path"/> with <paramref name="content"/> so that a crash at any point leaves
    /// either the old file or the new one, never a mix: temp file, fsync, rename, fsync of the directory.</summary>
    public static void WriteAtomically(string path, string content)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(tmp, new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew, Access = FileAccess.Write,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(content));
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
        SyncDirectory(dir);
    }

    // .NET cannot open a directory as a FileStream; fsync(2) of the directory makes the rename durable.
    private static void SyncDirectory(string dir) => Kiln.Interop.ProcessCalls.SyncDirectory(dir);
}
