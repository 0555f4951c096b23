using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.Tokenization;

namespace ModelGateway.Api.Providers.LlamaCpp;

/// <summary>
/// The llama.cpp server's OpenAI-compatible endpoint (tools/server/README.md, "POST /v1/chat/completions"). The base URL is
/// the server root. The request goes as for any OpenAI-compatible server (<c>response_format</c>, <c>json_schema</c> and
/// llama.cpp's own sampling fields pass through). Its quirks:
/// <list type="bullet">
/// <item>It serves one model and ignores <c>model</c>, reporting whatever it likes (the request's name, its default
/// <c>gpt-3.5-turbo</c>, or the file name); the client gets the route's upstream model name instead.</item>
/// <item>Usage may be missing (older builds, or a stream whose server ignores <c>stream_options.include_usage</c>). Then the
/// server's <c>timings</c> (prompt_n, cache_n, predicted_n) are its own token counts; without those the gateway counts with
/// its tokenizer and marks the usage <see cref="TokenUsage.Estimated"/>. The client always gets a usage object.</item>
/// <item>Errors are <c>{"error":{"code":&lt;int&gt;,"message","type"}}</c>, which the base class already reads.</item>
/// </list>
/// </summary>
internal sealed class LlamaCppAdapter(IOptions<GatewayOptions> options, ITokenCounter tokens) : OpenAICompatibleAdapter(options)
{
    public override string ProviderType => ProviderTypes.LlamaCpp;

    protected override string ChatCompletionsPath => "v1/chat/completions";

    /// <summary>The README documents <c>max_tokens</c> (and its native <c>n_predict</c>) for the cap.</summary>
    protected override string? MaxTokensField => "max_tokens";

    protected override ProviderCompletion ReadCompletion(byte[] body, ProviderCall call)
    {
        var completion = UpstreamBody.ParseObject(body);
        completion["model"] = call.Target.Model;
        if (completion["usage"] is JsonObject usage)
        {
            return new ProviderCompletion(completion, ReadUsage(usage));
        }
        var counted = FromTimings(completion["timings"] as JsonObject)
                      ?? Estimate(call, CompletionText(completion));
        completion["usage"] = counted.ToOpenAIUsage();
        return new ProviderCompletion(completion, counted);
    }

    protected override StreamState CreateStreamState(ProviderCall call) => new LlamaStreamState(call);

    protected override bool TryTranslateChunk(ReadOnlyMemory<byte> data, StreamState state, out StreamEvent streamEvent)
    {
        var s = (LlamaStreamState)state;
        var chunk = ParseChunk(data.Span);
        if (chunk["error"] is null)
        {
            if (s.Id is null && chunk["id"] is JsonValue id && id.GetValueKind() == JsonValueKind.String)
            {
                s.Id = id.GetValue<string>();
            }
            if (chunk["created"] is JsonValue created && created.TryGetValue<long>(out var c))
            {
                s.Created = c;
            }
            if (chunk["timings"] is JsonObject timings)
            {
                s.Timings = timings;
            }
            chunk["model"] = s.Call.Target.Model;
            data = Serialize(chunk);
        }
        var keep = Classify(data, state, out streamEvent);
        if (streamEvent.ContentDelta is { } delta)
        {
            s.Output.Append(delta);
        }
        return keep;
    }

    /// <summary>A stream that reported no usage gets a usage chunk of the gateway's own, so billing and the client both see one.</summary>
    protected override bool TryEndStream(StreamState state, out StreamEvent streamEvent)
    {
        var s = (LlamaStreamState)state;
        if (s.SawUsage)
        {
            streamEvent = default;
            return false;
        }
        var usage = FromTimings(s.Timings) ?? Estimate(s.Call, s.Output.ToString());
        var chunk = new JsonObject
        {
            ["id"] = s.Id,
            ["object"] = "chat.completion.chunk",
            ["created"] = s.Created,
            ["model"] = s.Call.Target.Model,
            ["choices"] = new JsonArray(),
            ["usage"] = usage.ToOpenAIUsage(),
        };
        streamEvent = new StreamEvent(StreamEventKind.Usage, Serialize(chunk), usage);
        return true;
    }

    /// <summary>
    /// The server's own counts (README, "timings"): <c>prompt_n</c> prompt tokens evaluated now, <c>cache_n</c> prompt tokens
    /// reused from the KV cache, <c>predicted_n</c> tokens generated. Exact for the served model, so not an estimate.
    /// </summary>
    private static TokenUsage? FromTimings(JsonObject? timings)
    {
        if (timings is null || timings["predicted_n"] is not JsonValue)
        {
            return null;
        }
        var cached = GetInt(timings, "cache_n");
        return new TokenUsage(GetInt(timings, "prompt_n") + cached, GetInt(timings, "predicted_n"), cached);
    }

    private TokenUsage Estimate(ProviderCall call, string output) =>
        new(tokens.CountMessages(call.Request.Messages), tokens.CountText(output), Estimated: true);

    /// <summary>What the model produced: content and tool-call names and arguments of every choice.</summary>
    private static string CompletionText(JsonObject completion)
    {
        var text = new StringBuilder();
        if (completion["choices"] is not JsonArray choices)
        {
            return "";
        }
        foreach (var choice in choices)
        {
            if (choice?["message"] is not JsonObject message)
            {
                continue;
            }
            if (message["content"] is JsonValue content && content.GetValueKind() == JsonValueKind.String)
            {
                text.Append(content.GetValue<string>());
            }
            if (message["tool_calls"] is JsonArray calls)
            {
                foreach (var call in calls)
                {
                    if (call?["function"] is JsonObject function)
                    {
                        AppendString(text, function["name"]);
                        AppendString(text, function["arguments"]);
                    }
                }
            }
        }
        return text.ToString();
    }

    private static void AppendString(StringBuilder text, JsonNode? node)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            text.Append(v.GetValue<string>());
        }
    }

    private static byte[] Serialize(JsonObject node)
    {
        using var body = PooledJsonWriter.Rent(relaxedEscaping: false);
        node.WriteTo(body.Writer);
        return body.ToArray();
    }

    private sealed class LlamaStreamState(ProviderCall call) : StreamState(call)
    {
        public string? Id { get; set; }

        public long Created { get; set; }

        /// <summary>The last <c>timings</c> seen: llama.cpp attaches them to the last chunk.</summary>
        public JsonObject? Timings { get; set; }

        /// <summary>The text produced so far, for a tokenizer estimate when the server reports no counts.</summary>
        public StringBuilder Output { get; } = new();
    }
}
