using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace ModelGateway.FakeUpstream.Faults;

/// <summary>
/// Calls per model name since the last reset, for <c>fault-fail-first@N</c>. Lock-free: the box is
/// created once per name and then only incremented.
/// </summary>
internal sealed class FaultCounters
{
    private readonly ConcurrentDictionary<string, StrongBox<int>> _calls = new(StringComparer.Ordinal);

    /// <summary>Counts one more call for <paramref name="model"/> and returns its number (1-based).</summary>
    public int Increment(string model) =>
        Interlocked.Increment(ref _calls.GetOrAdd(model, static _ => new StrongBox<int>()).Value);

    public void Reset() => _calls.Clear();
}
