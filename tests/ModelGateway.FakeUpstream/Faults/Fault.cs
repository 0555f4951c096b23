using System.Globalization;

namespace ModelGateway.FakeUpstream.Faults;

/// <summary>The behaviours a magic model name selects (docs/fake-upstream.md, "Magic model names").</summary>
internal enum FaultKind
{
    None,
    Status500,
    Status503,
    Status429,
    Status400,
    Status401,
    FailFirst,
    RateLimitFirst,
    SlowFirstToken,
    SlowChunks,
    StampedChunks,
    CutStream,
    MalformedChunk,
    Huge,
    Hang,
    ConnectionReset,
    HostileHeaders,
    LateEnd,
}

/// <summary>
/// A fault parsed from the upstream model name: <c>fault-NAME</c> or <c>fault-NAME@N</c>.
/// <see cref="Value"/> is the parameter (seconds, calls, milliseconds, chunks or MiB), or its default.
/// Unknown names are no fault at all: the contract answers "anything else" normally.
/// </summary>
internal readonly record struct Fault(FaultKind Kind, int Value)
{
    public static readonly Fault None = new(FaultKind.None, 0);

    public static Fault Parse(string? model)
    {
        if (model is null || !model.StartsWith("fault-", StringComparison.Ordinal))
        {
            return None;
        }
        var at = model.IndexOf('@');
        var name = at < 0 ? model : model[..at];
        var argument = at < 0 ? null : model[(at + 1)..];
        return name switch
        {
            "fault-500" => new(FaultKind.Status500, 0),
            "fault-503" => new(FaultKind.Status503, 0),
            "fault-429" => new(FaultKind.Status429, Argument(argument, 1, 0)),
            "fault-400" => new(FaultKind.Status400, 0),
            "fault-401" => new(FaultKind.Status401, 0),
            "fault-fail-first" => new(FaultKind.FailFirst, Argument(argument, 1, 0)),
            "fault-429-first" => new(FaultKind.RateLimitFirst, Argument(argument, 1, 0)),
            "fault-slow-first-token" => new(FaultKind.SlowFirstToken, Argument(argument, 3000, 0)),
            "fault-slow-chunks" => new(FaultKind.SlowChunks, Argument(argument, 200, 0)),
            "fault-stamped-chunks" => new(FaultKind.StampedChunks, Argument(argument, 200, 0)),
            // Cutting after zero content chunks is not expressible with the per-chunk check; 1 is the floor.
            "fault-cut-stream" => new(FaultKind.CutStream, Argument(argument, 3, 1)),
            "fault-malformed-chunk" => new(FaultKind.MalformedChunk, 2),
            "fault-huge" => new(FaultKind.Huge, Argument(argument, 8, 1)),
            "fault-hang" => new(FaultKind.Hang, 0),
            "fault-connection-reset" => new(FaultKind.ConnectionReset, 0),
            "fault-hostile-headers" => new(FaultKind.HostileHeaders, 0),
            "fault-late-end" => new(FaultKind.LateEnd, Argument(argument, 200, 0)),
            _ => None,
        };
    }

    private static int Argument(string? text, int fallback, int minimum) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? Math.Max(value, minimum)
            : fallback;
}
