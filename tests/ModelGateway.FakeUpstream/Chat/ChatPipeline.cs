using System.Text.Json;
using ModelGateway.FakeUpstream.Control;
using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// The path of every chat request, whatever its protocol:
/// 1. read the body whole and record it (_fake/requests) and count it (_fake/stats);
/// 2. header checks the real API makes first (Anthropic: x-api-key, anthropic-version);
/// 3. parse the JSON; the model name selects a fault, which may answer instead;
/// 4. read and validate the prompt in the protocol's terms;
/// 5. build the deterministic reply and write it, streamed or not;
/// The usage an answer reports goes to _fake/stats as it is written (<see cref="UsageTally"/>), so a cut
/// stream counts what preceded the cut.
/// </summary>
internal static class ChatPipeline
{
    public static async Task HandleAsync(HttpContext context, IChatProtocol protocol)
    {
        var received = System.Diagnostics.Stopwatch.GetTimestamp();
        var services = context.RequestServices;
        var time = services.GetRequiredService<TimeProvider>();
        var body = await ReadBodyAsync(context);
        using var document = TryParse(body);

        var recorded = new RecordedRequest(protocol.Kind.Name(), context.Request.Protocol, context.Request.Path.Value ?? "",
            CopyHeaders(context.Request.Headers), body, document is not null, time.GetUtcNow());
        services.GetRequiredService<RequestLog>().Add(recorded);
        var stats = services.GetRequiredService<UsageStats>();
        stats.CountRequest(protocol.Kind);

        try
        {
            if (protocol.ValidateHeaders(context.Request) is { } headerError)
            {
                await protocol.WriteErrorAsync(context, headerError);
                return;
            }
            if (document is null)
            {
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.InvalidRequest,
                    "The request body is not valid JSON."));
                return;
            }

            var root = document.RootElement;
            var model = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("model", out var m)
                && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            var fault = Fault.Parse(model);
            if (await FaultInjector.TryAnswerAsync(context, protocol, fault, model ?? ""))
            {
                return;
            }

            if (protocol.TryReadPrompt(root, out var prompt) is { } error)
            {
                await protocol.WriteErrorAsync(context, error);
                return;
            }
            if (!prompt.Stream && await FaultInjector.TryBreakBodyAsync(context, fault))
            {
                return;
            }

            var exchange = new ChatExchange
            {
                Context = context,
                Prompt = prompt,
                Reply = ReplyBuilder.Build(prompt, fault, SchemaAnswers.Of(model, services.GetRequiredService<FaultCounters>())),
                Fault = fault,
                Usage = new UsageTally(stats, protocol.Kind),
                Time = time,
                Created = time.GetUtcNow().ToUnixTimeSeconds(),
                IdSuffix = Guid.NewGuid().ToString("N"),
                ReceivedTimestamp = received,
            };
            if (prompt.Stream)
            {
                await protocol.WriteStreamAsync(exchange);
            }
            else
            {
                await protocol.WriteCompletionAsync(exchange);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The client went away (or a fault cut the connection); nothing left to answer.
        }
        finally
        {
            recorded.Complete(time.GetUtcNow(), context.RequestAborted.IsCancellationRequested);
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpContext context)
    {
        var length = context.Request.ContentLength;
        using var buffer = new MemoryStream(length is > 0 and < int.MaxValue ? (int)length.Value : 1024);
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        return buffer.ToArray();
    }

    private static JsonDocument? TryParse(byte[] body)
    {
        if (body.Length == 0)
        {
            return null;
        }
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static KeyValuePair<string, string>[] CopyHeaders(IHeaderDictionary headers)
    {
        var copy = new KeyValuePair<string, string>[headers.Count];
        var i = 0;
        foreach (var (name, values) in headers)
        {
            copy[i++] = new(name.ToLowerInvariant(), values.ToString());
        }
        return copy;
    }
}
