using System.Text;
using Microsoft.Extensions.ObjectPool;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Errors;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Streaming;

/// <summary>
/// Writes translated stream events to the client as OpenAI server-sent events
/// (https://platform.openai.com/docs/api-reference/chat-streaming), flushing after each so nothing is buffered whole.
/// Once the first byte is out there is no retry: an upstream failure ends the stream with an error event and no
/// <c>[DONE]</c>, which OpenAI's SDKs raise as an error.
/// </summary>
internal static partial class SseRelay
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>
    /// What a relayed stream produced, for settlement and traces. Dispose it once its <see cref="Content"/> has been read.
    /// </summary>
    internal sealed class Outcome : IDisposable
    {
        // The relayed text (to bill a stream that ends without usage, and for a structured-output check) goes into a pooled
        // builder: a real stream lasts seconds, long enough for a builder of its own and every chunk it grew by to be
        // promoted out of the young generations and die old; a pooled one is already old and is written in place. At most
        // 256 are kept, each of at most 16 K characters; a longer answer's builder is left to the GC (docs/benchmark.md,
        // session 23).
        private static readonly ObjectPool<StringBuilder> Builders =
            new DefaultObjectPoolProvider { MaximumRetained = 256 }.CreateStringBuilderPool(initialCapacity: 256, maximumRetainedCapacity: 16 * 1024);

        private StringBuilder? _content = Builders.Get();

        public TokenUsage? Usage { get; set; }
        public string? FinishReason { get; set; }

        /// <summary>The text relayed so far (content and tool-call arguments), until the outcome is disposed.</summary>
        public StringBuilder Content => _content ?? throw new ObjectDisposedException(nameof(Outcome));

        public string? Error { get; set; }
        public bool ClientDisconnected { get; set; }
        public bool Completed { get; set; }

        public void Dispose()
        {
            if (_content is { } content)
            {
                _content = null;
                Builders.Return(content);
            }
        }
    }

    /// <param name="finalCheck">
    /// Run when the upstream stream has ended normally, before <c>[DONE]</c>; an error it returns is sent as the last event
    /// instead of <c>[DONE]</c> (structured output: the assembled content failed its schema).
    /// </param>
    public static async Task<Outcome> RelayAsync(HttpContext context, ChatRequest request, IAsyncEnumerator<StreamEvent> events,
        bool hasFirstEvent, ILogger logger, Func<Outcome, OpenAIError?>? finalCheck = null)
    {
        var outcome = new Outcome();
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var writer = response.BodyWriter;
        var aborted = context.RequestAborted;

        try
        {
            await response.StartAsync(aborted);
            var more = hasFirstEvent;
            while (more)
            {
                var e = events.Current;
                if (e.Usage is { } usage)
                {
                    outcome.Usage = usage;
                }
                if (e.FinishReason is not null)
                {
                    outcome.FinishReason = e.FinishReason;
                }
                if (e.ContentDelta is { } delta)
                {
                    outcome.Content.Append(delta);
                }
                if (e.Kind == StreamEventKind.Error)
                {
                    outcome.Error = "upstream_stream_error";
                    await WriteEventAsync(writer, e.Json, aborted);
                    return outcome;
                }
                if (e.Kind == StreamEventKind.Chunk || request.IncludeUsage)
                {
                    await WriteEventAsync(writer, e.Json, aborted);
                }
                more = await events.MoveNextAsync();
            }
            if (finalCheck?.Invoke(outcome) is { } rejected)
            {
                outcome.Error = rejected.Code;
                await WriteEventAsync(writer, rejected.ToUtf8Bytes(), aborted);
                return outcome;
            }
            outcome.Completed = true;
            await writer.WriteAsync(Done, aborted);
            await writer.FlushAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            outcome.ClientDisconnected = true;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or TimeoutException or System.Text.Json.JsonException)
        {
            outcome.Error = ex is TimeoutException ? "timeout" : ex is System.Text.Json.JsonException ? "invalid_response" : "stream_broken";
            LogStreamFailed(logger, outcome.Error, ex.Message);
            if (!aborted.IsCancellationRequested)
            {
                var error = new OpenAIError(502, ex is TimeoutException
                        ? "The provider stopped sending the stream (timeout); the answer is incomplete."
                        : $"The provider's stream failed mid-way; the answer is incomplete. ({ex.Message})",
                    "api_error", null, ex is TimeoutException ? "upstream_timeout" : "upstream_stream_error");
                try
                {
                    await WriteEventAsync(writer, error.ToUtf8Bytes(), aborted);
                }
                catch (Exception writeEx) when (writeEx is IOException or OperationCanceledException)
                {
                    outcome.ClientDisconnected = true;
                }
            }
        }
        return outcome;
    }

    private static async ValueTask WriteEventAsync(System.IO.Pipelines.PipeWriter writer, ReadOnlyMemory<byte> json, CancellationToken cancellationToken)
    {
        var span = writer.GetSpan(DataPrefix.Length + json.Length + EventEnd.Length);
        DataPrefix.CopyTo(span);
        json.Span.CopyTo(span[DataPrefix.Length..]);
        EventEnd.CopyTo(span[(DataPrefix.Length + json.Length)..]);
        writer.Advance(DataPrefix.Length + json.Length + EventEnd.Length);
        var flush = await writer.FlushAsync(cancellationToken);
        if (flush.IsCanceled || flush.IsCompleted)
        {
            throw new OperationCanceledException("The client stopped reading.", cancellationToken);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upstream stream ended abnormally ({ErrorType}): {Reason}")]
    private static partial void LogStreamFailed(ILogger logger, string errorType, string reason);

}
