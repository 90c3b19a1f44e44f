using Kiln.Daemon;

namespace Kiln.Tests.Daemon;

public sealed class DomainStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kiln-store-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void WriteAtomicallyReplacesAndLeavesNoTemporaryFiles()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "a.json");
        DomainStore.WriteAtomically(path, "one");
        DomainStore.WriteAtomically(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Equal(["a.json"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public async Task ConcurrentWritersNeverLeaveAPartialFile()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "c.json");
        string a = new('a', 200_000), b = new('b', 200_000);
        DomainStore.WriteAtomically(path, a);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var writers = Enumerable.Range(0, 2).Select(i => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                DomainStore.WriteAtomically(path, i == 0 ? a : b);
        })).ToArray();
        while (!stop.IsCancellationRequested)
        {
            string text = File.ReadAllText(path);
            Assert.True(text == a || text == b, "a reader saw a torn file");
        }
        await Task.WhenAll(writers);
    }

    [Fact]
    public void SavesLoadsAndDeletesDefinitions()
    {
        var store = new DomainStore(_dir);
        var d = DomainCodec.FromJson("""{"name":"vm1","os":{"kernel":"/k"}}""");
        store.Save(d);
        store.SaveRuntime("vm1", new RuntimeRecord { Pid = 42, StartTicks = 7, Socket = "/s" });
        var loaded = Assert.Single(store.LoadAll());
        Assert.Equal(d.Uuid, loaded.Uuid);
        Assert.Equal(42, store.LoadRuntime("vm1")!.Pid);
        store.Delete("vm1");
        Assert.Empty(store.LoadAll());
        Assert.Null(store.LoadRuntime("vm1"));
    }

    [Fact]
    public void LeftoverTemporaryFilesAndCorruptDefinitionsAreIgnored()
    {
        var store = new DomainStore(_dir);
        File.WriteAllText(Path.Combine(store.DomainsDir, ".x.json.1.tmp"), "{");
        File.WriteAllText(Path.Combine(store.DomainsDir, "broken.json"), "{\"name\":");
        store.Save(DomainCodec.FromJson("""{"name":"ok","os":{"kernel":"/k"}}"""));
        var again = new DomainStore(_dir);
        Assert.Equal(["ok"], again.LoadAll().Select(d => d.Name));
        Assert.False(File.Exists(Path.Combine(store.DomainsDir, ".x.json.1.tmp")));
    }
}
