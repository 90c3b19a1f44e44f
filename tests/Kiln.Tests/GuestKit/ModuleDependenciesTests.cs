using Kiln.GuestKit;

namespace Kiln.Tests.GuestKit;

public sealed class ModuleDependenciesTests
{
    private const string Dep = """
        kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz
        kernel/drivers/virtio/virtio_ring.ko.xz:
        kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
        kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
        kernel/net/core/failover.ko.xz:
        kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
        """;

    [Fact]
    public void LoadOrderPutsDependenciesFirstOnce()
    {
        var deps = new ModuleDependencies(Dep);
        var order = deps.LoadOrder([deps.Find("virtio_net")!, deps.Find("virtio_rng")!]);
        Assert.Equal(6, order.Count);
        Assert.Equal(order.Count, order.Distinct().Count());
        int Pos(string name) => order.ToList().FindIndex(p => ModuleDependencies.ModuleName(p) == name);
        Assert.True(Pos("virtio_ring") < Pos("virtio"));
        Assert.True(Pos("failover") < Pos("net_failover"));
        Assert.True(Pos("net_failover") < Pos("virtio_net"));
        Assert.True(Pos("virtio") < Pos("virtio-rng"));
    }

    [Fact]
    public void FindTreatsDashAndUnderscoreAlike()
    {
        var deps = new ModuleDependencies(Dep);
        Assert.Equal("kernel/drivers/char/hw_random/virtio-rng.ko.xz", deps.Find("virtio_rng"));
        Assert.Null(deps.Find("virtio_blk"));
        Assert.Equal("/lib/modules/virtio-rng.ko", StockKitBuilderPaths.Image("kernel/drivers/char/hw_random/virtio-rng.ko.xz"));
    }
}

internal static class StockKitBuilderPaths
{
    public static string Image(string modulePath) => StockKitBuilder.ImagePath(modulePath);
}
