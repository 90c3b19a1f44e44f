using System.Threading.Channels;

namespace Kiln.Daemon.Domains;

/// <summary>Lifecycle events (defined, started, suspended, stopped, crashed, migrated, ...) to every subscriber: a
/// bounded channel each, the oldest event dropped for a subscriber that does not keep up.</summary>
public sealed class EventHub
{
    private readonly List<Channel<LifecycleEvent>> _subscribers = [];

    public ChannelReader<LifecycleEvent> Subscribe(out Action unsubscribe)
    {
        var channel = Channel.CreateBounded<LifecycleEvent>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_subscribers)
            _subscribers.Add(channel);
        unsubscribe = () =>
        {
            lock (_subscribers)
                _subscribers.Remove(channel);
        };
        return channel.Reader;
    }

    public void Publish(string domain, string what, string? detail = null)
    {
        var e = new LifecycleEvent { Time = DateTimeOffset.UtcNow, Domain = domain, Event = what, Detail = detail };
        lock (_subscribers)
            foreach (var s in _subscribers)
                s.Writer.TryWrite(e);
    }
}
