using Kiln.Cli;
using Kiln.Contracts.Spec;

namespace Kiln.Tests.Cli;

/// <summary>`kiln run --incoming` opens its disks only when the source arrives; a disk path that can never work is
/// refused at start-up instead.</summary>
public sealed class IncomingDiskCheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-incoming-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ExistingImagesAndAbsentImagesInAnExistingDirectoryPass()
    {
        string existing = Path.Combine(_dir, "a.raw");
        File.WriteAllBytes(existing, new byte[512]);
        RunCommand.CheckIncomingDisks([new DiskSpec { Path = existing }, new DiskSpec { Path = Path.Combine(_dir, "created-later.qcow2") }]);
    }

    [Fact]
    public void AnImageWhoseDirectoryDoesNotExistIsRefused()
    {
        string path = Path.Combine(_dir, "missing-dir", "b.raw");
        var e = Assert.Throws<UsageException>(() => RunCommand.CheckIncomingDisks([new DiskSpec { Path = path }]));
        Assert.Contains("missing-dir", e.Message);
    }
}
