using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Realtime.DataChannels;
using ModelGateway.Realtime.Sessions;
using ModelGateway.Realtime;

namespace ModelGateway.Realtime.Chat;

/// <summary>
/// The chat protocol on a session's channels: each text message is one chat request (the body of
/// <c>POST /v1/chat/completions</c> plus an optional <c>id</c>); it is sent to the Api with the
/// session's key and its answer is relayed back as <see cref="ChannelMessages"/>. Requests run
/// concurrently, each in its own task; the channel's receive thread never waits on them.
/// </summary>
internal sealed partial class ChatRelay(
    IApiClient api,
    string apiKey,
    string sessionId,
    RealtimeOptions options,
    RealtimeTelemetry telemetry,
    TimeProvider time,
    ILogger logger,
    ActivityContext sessionContext,
    CancellationToken sessionClosed)
{
    /// <summary>Queued + in-flight bytes on the association above which a relay waits before sending more.</summary>
    private const int HighWaterMark = 1024 * 1024;

    private readonly TokenBucket _bucket = new(options.MessagesPerSecond, options.MessageBurst, time);
    private int _inFlight;
    private long _nextGeneratedId;
    private long _lastActivity = time.GetTimestamp();

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Time since the last message either way, or zero while a request is in flight.</summary>
    public TimeSpan Idle => InFlight > 0 ? TimeSpan.Zero : time.GetElapsedTime(Interlocked.Read(ref _lastActivity));

    private void Touch() => Interlocked.Exchange(ref _lastActivity, time.GetTimestamp());

    public void OnMessage(DataChannel channel, bool isText, byte[] data)
    {
        Touch();
        telemetry.Messages.Add(1, new KeyValuePair<string, object?>("direction", "received"));
        if (!isText)
        {
            Reject(channel, "null", 400, "Binary messages are not supported: send the chat request as JSON text.", "invalid_request_error", "unsupported_message");
            return;
        }
        if (data.Length > options.MaxMessageBytes)
        {
            Reject(channel, "null", 413, $"The message exceeds {options.MaxMessageBytes} bytes.", "invalid_request_error", "message_too_large");
            return;
        }
        JsonObject? request;
        try
        {
            request = JsonNode.Parse(data) as JsonObject;
        }
        catch (JsonException)
        {
            request = null;
        }
        if (request is null)
        {
            Reject(channel, "null", 400, "The message is not a JSON object (a chat completion request).", "invalid_request_error", "invalid_json");
            return;
        }

        string idJson;
        if (request["id"] is { } idNode)
        {
            if (idNode.GetValueKind() is not (JsonValueKind.String or JsonValueKind.Number))
            {
                Reject(channel, "null", 400, "'id' must be a string or a number.", "invalid_request_error", "invalid_id", "id");
                return;
            }
            idJson = idNode.ToJsonString();
            request.Remove("id");
        }
        else
        {
            idJson = JsonSerializer.Serialize("rt-" + Interlocked.Increment(ref _nextGeneratedId), RealtimeJsonContext.Default.String);
        }

        if (!_bucket.TryTake())
        {
            telemetry.ChatRequests.Add(1, new KeyValuePair<string, object?>("outcome", "rate_limited"));
            Reject(channel, idJson, 429, "Too many requests on this session; slow down.", "rate_limit_exceeded", "rate_limit_exceeded");
            return;
        }
        if (Interlocked.Increment(ref _inFlight) > options.MaxConcurrentRequestsPerSession)
        {
            Interlocked.Decrement(ref _inFlight);
            telemetry.ChatRequests.Add(1, new KeyValuePair<string, object?>("outcome", "too_many_in_flight"));
            Reject(channel, idJson, 429, $"At most {options.MaxConcurrentRequestsPerSession} requests may be in flight on one session.", "rate_limit_exceeded", "too_many_requests_in_flight");
            return;
        }

        // The channel protocol always streams from the Api; "stream": false only hides the chunks.
        var wantsChunks = request["stream"]?.GetValueKind() != JsonValueKind.False;
        request["stream"] = true;
        var streamOptions = request["stream_options"] as JsonObject ?? new JsonObject();
        streamOptions["include_usage"] = true;
        request["stream_options"] = streamOptions;
        var model = (string?)request["model"];
        var body = Encoding.UTF8.GetBytes(request.ToJsonString());

        _ = Task.Run(() => RunAsync(channel, idJson, model, body, wantsChunks), CancellationToken.None);
    }

    private async Task RunAsync(DataChannel channel, string idJson, string? model, byte[] body, bool wantsChunks)
    {
        var started = time.GetTimestamp();
        using var activity = RealtimeTelemetry.ActivitySource.StartActivity("realtime chat", ActivityKind.Server, sessionContext);
        activity?.SetTag("realtime.session.id", sessionId);
        activity?.SetTag("gen_ai.operation.name", "chat");
        activity?.SetTag("gen_ai.request.model", model);
        var outcome = "ok";
        try
        {
            var accumulator = new CompletionAccumulator();
            string? completion = null;
            await foreach (var e in api.StreamChatAsync(apiKey, body, sessionClosed).ConfigureAwait(false))
            {
                switch (e)
                {
                    case ApiChatEvent.Chunk chunk:
                        var node = JsonNode.Parse(chunk.Json) as JsonObject;
                        if (node?["error"] is JsonObject)
                        {
                            // An error in the middle of a stream (the Api or a provider gave up after the first byte).
                            outcome = "error";
                            await SendAsync(channel, ChannelMessages.Error(idJson, 502, chunk.Json)).ConfigureAwait(false);
                            return;
                        }
                        if (node is not null)
                        {
                            accumulator.Add(node);
                        }
                        if (accumulator.Chunks == 1)
                        {
                            telemetry.TimeToFirstChunk.Record(time.GetElapsedTime(started).TotalSeconds);
                        }
                        if (wantsChunks)
                        {
                            await SendAsync(channel, ChannelMessages.Chunk(idJson, chunk.Json)).ConfigureAwait(false);
                        }
                        break;
                    case ApiChatEvent.Completion whole:
                        completion = whole.Json;
                        break;
                    case ApiChatEvent.Error error:
                        outcome = "error";
                        activity?.SetStatus(ActivityStatusCode.Error, "api error " + error.Status);
                        await SendAsync(channel, ChannelMessages.Error(idJson, error.Status, error.Json)).ConfigureAwait(false);
                        return;
                }
            }
            completion ??= accumulator.ToCompletion().ToJsonString();
            await SendAsync(channel, ChannelMessages.Completion(idJson, completion)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (sessionClosed.IsCancellationRequested)
        {
            outcome = "cancelled";
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or InvalidOperationException)
        {
            outcome = "error";
            activity?.SetStatus(ActivityStatusCode.Error, e.GetType().Name);
            LogRelayFailed(logger, e, sessionId);
            try
            {
                await SendAsync(channel, ChannelMessages.Error(idJson, 502, "The request failed between the gateway and the realtime endpoint.", "api_error", "relay_failed")).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            Touch();
            telemetry.ChatRequests.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    private async Task SendAsync(DataChannel channel, string message)
    {
        Touch();
        if (await channel.SendTextAsync(message, HighWaterMark, sessionClosed).ConfigureAwait(false))
        {
            telemetry.Messages.Add(1, new KeyValuePair<string, object?>("direction", "sent"));
        }
    }

    private void Reject(DataChannel channel, string idJson, int status, string message, string type, string code, string? param = null) =>
        _ = SendAsync(channel, ChannelMessages.Error(idJson, status, message, type, code, param))
            .ContinueWith(static t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Realtime session {SessionId}: relaying a chat request failed")]
    private static partial void LogRelayFailed(ILogger logger, Exception exception, string sessionId);
}
