using System.Collections;
using System.Runtime.CompilerServices;

namespace ModelGateway.Api.Routing;

/// <summary>
/// The upstream attempts of one request, in order, as a value: a lone attempt (nearly every request) is held inline, and
/// only a retried request refers to an array. The trace record carries this while it waits in the trace writer's buffer,
/// so the common case points at nothing the GC must promote with it (see <see cref="Tracing.W3CTraceId"/>); it also spares
/// the router a list per request. Appending returns a new log; a collection expression (<c>[a, b]</c>) builds one.
/// </summary>
[CollectionBuilder(typeof(AttemptLog), nameof(Of))]
internal readonly struct AttemptLog : IReadOnlyList<AttemptRecord>
{
    private readonly AttemptRecord _only;
    private readonly AttemptRecord[]? _all;

    private AttemptLog(AttemptRecord only) => (_only, Count) = (only, 1);

    private AttemptLog(AttemptRecord[] all) => (_all, Count) = (all, all.Length);

    public int Count { get; }

    public AttemptRecord this[int index] => (uint)index >= (uint)Count
        ? throw new ArgumentOutOfRangeException(nameof(index))
        : _all is { } all ? all[index] : _only;

    /// <summary>This log with <paramref name="attempt"/> after the last.</summary>
    public AttemptLog Append(AttemptRecord attempt)
    {
        if (Count == 0)
        {
            return new(attempt);
        }
        var all = new AttemptRecord[Count + 1];
        for (var i = 0; i < Count; i++)
        {
            all[i] = this[i];
        }
        all[Count] = attempt;
        return new(all);
    }

    /// <summary>This log followed by <paramref name="later"/>'s attempts, numbered on from this log's last.</summary>
    public AttemptLog Then(AttemptLog later)
    {
        if (later.Count == 0 || Count == 0)
        {
            return Count == 0 ? later : this; // nothing to renumber: an empty log has no last attempt to follow
        }
        var all = new AttemptRecord[Count + later.Count];
        for (var i = 0; i < all.Length; i++)
        {
            all[i] = i < Count ? this[i] : later[i - Count] with { Number = later[i - Count].Number + Count };
        }
        return new(all);
    }

    public static AttemptLog Of(params ReadOnlySpan<AttemptRecord> attempts) => attempts.Length switch
    {
        0 => default,
        1 => new(attempts[0]),
        _ => new(attempts.ToArray()),
    };

    public IEnumerator<AttemptRecord> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
