using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>Everything a protocol needs to write one answer.</summary>
internal sealed class ChatExchange
{
    public required HttpContext Context { get; init; }

    public required ChatPrompt Prompt { get; init; }

    public required Reply Reply { get; init; }

    public required Fault Fault { get; init; }

    public required UsageTally Usage { get; init; }

    public required TimeProvider Time { get; init; }

    /// <summary>Unix seconds, for the <c>created</c> fields.</summary>
    public required long Created { get; init; }

    /// <summary>A fresh random suffix for response ids (chatcmpl-…, msg_…).</summary>
    public required string IdSuffix { get; init; }

    /// <summary>When the handler began (<see cref="System.Diagnostics.Stopwatch"/> timestamp), for fault-stamped-chunks.</summary>
    public required long ReceivedTimestamp { get; init; }

    public CancellationToken Aborted => Context.RequestAborted;

    /// <summary>
    /// Starts an SSE response. <paramref name="malformedEvent"/> is the protocol's broken event for
    /// fault-malformed-chunk.
    /// </summary>
    public SseWriter StartSse(string contentType, ReadOnlyMemory<byte> malformedEvent)
    {
        var response = Context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = contentType;
        response.Headers.CacheControl = "no-cache";
        return new SseWriter(Context, Fault, Time, malformedEvent, ReceivedTimestamp);
    }
}
