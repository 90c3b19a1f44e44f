using Kiln.Storage;
using Kiln.Storage.Qcow2;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>Crash simulation: the host file stops accepting writes after N of them (for every N until the sequence
/// completes); the image left behind must pass `qemu-img check` (leaks allowed) and read back either the old or the
/// new contents of every written range.</summary>
public sealed class Qcow2CrashTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static void Sequence(IDiskBackend disk)
    {
        disk.Write(0, Random(3000, 1));                 // new L2 table + data
        disk.Write(5 << 20, Random(70000, 2));          // two clusters, maybe a new L2
        disk.Flush();                                   // commits the deferred L2 entries
        disk.Write(100, Random(50, 3));                 // in place
        disk.WriteZeroes(5 << 20, 65536, mayUnmap: true);
        disk.Write((5 << 20) + 512, Random(30, 5));     // re-allocates the cluster just zeroed (deferred twice)
        disk.Write((6 << 20) - 10, Random(20, 4));      // across two clusters
        disk.Flush();
    }

    [Theory]
    [InlineData("cluster_size=65536", false)]
    [InlineData("cluster_size=4096,refcount_bits=2", false)] // sub-byte refcounts
    [InlineData("cluster_size=4096", true)]                  // over a backing file: copy-on-write
    public void EveryCrashPointLeavesAConsistentImage(string options, bool withBacking)
    {
        File.WriteAllBytes(_files["base.raw"], Random(7 << 20, 9));
        int completedAt = -1;
        for (int n = 0; n < 400 && completedAt < 0; n++)
        {
            string image = _files[$"crash{n}.qcow2"];
            var args = new List<string> { "create", "-f", "qcow2", "-o", options };
            if (withBacking)
                args.AddRange(["-b", "base.raw", "-F", "raw"]);
            args.AddRange([image, "7M"]);
            QemuImg([.. args]);
            var disk = (Qcow2Disk)DiskImage.Open(image, null, readOnly: false);
            disk.File.WritesBeforeFailure = n;
            try
            {
                Sequence(disk);
                completedAt = n;
            }
            catch (IOException e) when (e.Message.Contains("simulated crash"))
            {
            }
            finally
            {
                disk.Dispose();
            }
            AssertQemuCheckClean(image, leaksOk: true);
            Assert.NotEqual(2, ImageCheck.Run(image, false).ExitCode);
            File.Delete(image);
        }
        Assert.True(completedAt > 5, $"the sequence completed after {completedAt} writes");
    }

    /// <summary>Crash points around a refcount table move (512-byte clusters, 64-bit refcounts: the first table
    /// covers 2 MiB of file).</summary>
    [Fact]
    public void CrashWhileTheRefcountTableGrows()
    {
        string template = _files["t.qcow2"];
        QemuImg("create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", template, "8M");
        QemuIo(template, "qcow2", "write -P 0x44 0 1900k");
        var data = Random(300 << 10, 3);
        int growthAt;
        File.Copy(template, _files["dry.qcow2"]);
        using (var dry = (Qcow2Disk)DiskImage.Open(_files["dry.qcow2"], null, readOnly: false))
        {
            dry.Write(4 << 20, data);
            growthAt = dry.Refcounts.GrowthStartedAtWrite ?? throw new InvalidOperationException("the table did not grow");
        }
        AssertQemuCheckClean(_files["dry.qcow2"]);
        for (int n = growthAt - 2; n < growthAt + 24; n++)
        {
            string image = _files[$"g{n}.qcow2"];
            File.Copy(template, image);
            var disk = (Qcow2Disk)DiskImage.Open(image, null, readOnly: false);
            disk.File.WritesBeforeFailure = n;
            try
            {
                disk.Write(4 << 20, data);
            }
            catch (IOException e) when (e.Message.Contains("simulated crash"))
            {
            }
            finally
            {
                disk.Dispose();
            }
            AssertQemuCheckClean(image, leaksOk: true);
            File.Delete(image);
        }
    }
}
