using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>Anthropic answers, errors and usage in OpenAI's terms; shared by the non-streaming and streaming paths.</summary>
internal static class AnthropicResponse
{
    /// <summary>
    /// A <c>message</c> (https://docs.anthropic.com/en/api/messages, response) as a <c>chat.completion</c>
    /// (https://platform.openai.com/docs/api-reference/chat/object): text blocks joined into <c>content</c>, <c>tool_use</c>
    /// blocks as <c>tool_calls</c> whose arguments are the JSON text of <c>input</c>. Thinking and server-tool blocks have no
    /// OpenAI counterpart and are left out.
    /// </summary>
    /// <remarks>With <paramref name="structured"/>, the response tool's input is the content (<see cref="AnthropicStructuredOutput"/>).</remarks>
    public static JsonObject ToCompletion(JsonObject message, long created, out TokenUsage usage, AnthropicStructuredOutput? structured = null)
    {
        StringBuilder? text = null;
        JsonArray? toolCalls = null;
        if (message["content"] is JsonArray blocks)
        {
            foreach (var block in blocks)
            {
                if (block is not JsonObject b)
                {
                    continue;
                }
                switch (StringOf(b["type"]))
                {
                    case "text":
                        (text ??= new StringBuilder()).Append(StringOf(b["text"]));
                        break;
                    case "tool_use" when structured is not null && StringOf(b["name"]) == structured.ToolName:
                        (text ??= new StringBuilder()).Append(structured.ContentOf(b["input"]));
                        break;
                    case "tool_use":
                        (toolCalls ??= []).Add(new JsonObject
                        {
                            ["id"] = StringOf(b["id"]),
                            ["type"] = "function",
                            ["function"] = new JsonObject
                            {
                                ["name"] = StringOf(b["name"]),
                                ["arguments"] = b["input"]?.ToJsonString() ?? "{}",
                            },
                        });
                        break;
                }
            }
        }

        var reply = new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = text?.ToString(),
            ["refusal"] = null,
        };
        if (toolCalls is not null)
        {
            reply["tool_calls"] = toolCalls;
        }
        usage = ReadUsage(message["usage"] as JsonObject);
        return new JsonObject
        {
            ["id"] = StringOf(message["id"]),
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = StringOf(message["model"]),
            ["choices"] = new JsonArray
            {
                new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = reply,
                    ["logprobs"] = null,
                    ["finish_reason"] = FinishReason(StringOf(message["stop_reason"])) is "tool_calls" && structured is not null && toolCalls is null
                        ? "stop"
                        : FinishReason(StringOf(message["stop_reason"])),
                },
            },
            ["usage"] = usage.ToOpenAIUsage(),
        };
    }

    /// <summary>
    /// Anthropic <c>stop_reason</c> (stop reasons guide) → OpenAI <c>finish_reason</c>. pause_turn (a server-tool loop
    /// paused) ends the turn as far as the client can tell; a refusal is OpenAI's content_filter.
    /// </summary>
    public static string? FinishReason(string? stopReason) => stopReason switch
    {
        null => null,
        "end_turn" or "stop_sequence" or "pause_turn" => "stop",
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    };

    /// <summary>A <c>usage</c> object as gateway usage; see <see cref="ReadCounts"/>.</summary>
    public static TokenUsage ReadUsage(JsonObject? usage) => ReadCounts(usage, default).ToTokenUsage();

    /// <summary>
    /// Reads Anthropic's counts. <paramref name="previous"/> supplies the counts an event leaves out: <c>message_delta</c>
    /// usage is cumulative but may carry only <c>output_tokens</c> (streaming guide, "Event types").
    /// </summary>
    public static AnthropicUsage ReadCounts(JsonObject? usage, AnthropicUsage previous) => usage is null
        ? previous
        : new AnthropicUsage(
            Int(usage, "input_tokens") ?? previous.Input,
            Int(usage, "cache_read_input_tokens") ?? previous.CacheRead,
            Int(usage, "cache_creation_input_tokens") ?? previous.CacheCreation,
            Int(usage, "output_tokens") ?? previous.Output);

    /// <summary>
    /// Anthropic error type (errors guide, "HTTP errors") → OpenAI error type. Authentication and permission errors are the
    /// gateway's own credentials failing, not the client's, so they are api_error like overloaded_error and api_error.
    /// </summary>
    public static string OpenAIErrorType(string? anthropicType) => anthropicType switch
    {
        "invalid_request_error" or "not_found_error" or "request_too_large" => "invalid_request_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "api_error",
    };

    /// <summary>An <c>{"type":"error","error":{type,message}}</c> body or event, read defensively.</summary>
    public static (string? Type, string? Message) ReadError(JsonNode? body) =>
        body?["error"] is JsonObject e ? (StringOf(e["type"]), StringOf(e["message"])) : (null, null);

    private static int? Int(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;

    private static string? StringOf(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>
/// Anthropic's four counts, kept apart until they are folded into OpenAI's two. Anthropic's <c>input_tokens</c> excludes the
/// cached prefix, so OpenAI's <c>prompt_tokens</c> is input + cache reads + cache writes, and the cache reads are the cached
/// tokens (prompt caching guide, "Tracking cache performance").
/// </summary>
internal readonly record struct AnthropicUsage(int Input, int CacheRead, int CacheCreation, int Output)
{
    public TokenUsage ToTokenUsage() => new(Input + CacheRead + CacheCreation, Output, CacheRead);
}
