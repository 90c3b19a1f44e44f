using System.Diagnostics;

namespace Kiln.Vmm.Migration;

/// <summary>Where the downtime goes: the time of each switch-over step (pause, last pages, state save, the
/// destination's restore, its resume), for --debug and the benchmark.</summary>
internal sealed class SwitchOverTimes
{
    private readonly List<(string Step, double Ms)> _steps = [];
    private double _last;

    public void Mark(string step, Stopwatch clock)
    {
        double now = clock.Elapsed.TotalMilliseconds;
        _steps.Add((step, now - _last));
        _last = now;
    }

    public override string ToString() => string.Join(", ", _steps.Select(s => $"{s.Step} {s.Ms:0.0} ms"));
}
