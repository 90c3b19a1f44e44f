using System.Text.Json;
using Kiln.Cli;
using static Kiln.Tests.Storage.Qcow2.Qcow2TestFiles;

namespace Kiln.Tests.Storage.Qcow2;

/// <summary>`kiln img` verbs: flags, exit codes and agreement with qemu-img.</summary>
public sealed class Qcow2CliTests : IDisposable
{
    private readonly Qcow2TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void CreateInfoCheckConvertResize()
    {
        File.WriteAllBytes(_files["base.raw"], Random(3 << 20, 31));
        Assert.Equal(0, ImgCommand.Execute(["create", "-f", "qcow2", "-o", "cluster_size=32k", "-b", "base.raw", "-F", "raw", _files["ov.qcow2"]]));
        AssertQemuCheckClean(_files["ov.qcow2"]);
        using (var theirs = JsonDocument.Parse(QemuImg("info", "--output=json", _files["ov.qcow2"])))
        {
            Assert.Equal(3 << 20, theirs.RootElement.GetProperty("virtual-size").GetInt64());
            Assert.Equal(32768, theirs.RootElement.GetProperty("cluster-size").GetInt64());
            Assert.Equal("base.raw", theirs.RootElement.GetProperty("backing-filename").GetString());
        }
        Assert.Equal(0, ImgCommand.Execute(["check", _files["ov.qcow2"]]));
        Assert.Equal(0, ImgCommand.Execute(["info", "--json", "--backing-chain", _files["ov.qcow2"]]));
        Assert.Equal(0, ImgCommand.Execute(["convert", "-O", "qcow2", "-p", _files["ov.qcow2"], _files["flat.qcow2"]]));
        QemuImg("compare", _files["base.raw"], _files["flat.qcow2"]);
        Assert.Equal(0, ImgCommand.Execute(["resize", _files["flat.qcow2"], "+1G"]));
        Assert.Contains("\"virtual-size\": 1076887552", QemuImg("info", "--output=json", _files["flat.qcow2"]));
        AssertQemuCheckClean(_files["flat.qcow2"]);
        Assert.Equal(0, ImgCommand.Execute(["create", "-f", "raw", _files["r.raw"], "1M"]));
        Assert.Equal(1 << 20, new FileInfo(_files["r.raw"]).Length);
        Assert.Equal(63, ImgCommand.Execute(["check", _files["r.raw"]]));
        Assert.Throws<UsageException>(() => ImgCommand.Execute(["resize", _files["r.raw"], "-1M"]));
        Assert.Throws<UsageException>(() => ImgCommand.Execute(["frobnicate"]));
    }

    [Fact]
    public void DiskOptionTakesAFormat()
    {
        Assert.Equal("qcow2", DeviceOptionParser.Disk("/x.qcow2,format=qcow2").Format);
        Assert.Equal("raw", DeviceOptionParser.Disk("/x.img,format=raw,ro").Format);
        Assert.Null(DeviceOptionParser.Disk("/x.img").Format);
        Assert.Throws<UsageException>(() => DeviceOptionParser.Disk("/x.img,format=vmdk"));
    }

    [Fact]
    public void SizesAreBytesUnlessSuffixed()
    {
        Assert.Equal(1000UL, ImgCommand.ParseSize("1000"));
        Assert.Equal(1536UL << 20, ImgCommand.ParseSize("1.5G"));
        Assert.Equal(64UL << 10, ImgCommand.ParseSize("64k"));
    }
}
