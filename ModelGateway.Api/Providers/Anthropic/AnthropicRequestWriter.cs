using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Routing;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>
/// Writes an Anthropic Messages request (https://docs.anthropic.com/en/api/messages) from an OpenAI chat request
/// (https://platform.openai.com/docs/api-reference/chat/create), straight into a <see cref="Utf8JsonWriter"/>. Fields without
/// an Anthropic counterpart (n, logprobs, presence_penalty, seed, ...) are not sent.
/// </summary>
internal static class AnthropicRequestWriter
{
    /// <summary>The body to POST to <c>/v1/messages</c>. Throws <see cref="UnsupportedRequestException"/> for content Anthropic cannot take.</summary>
    public static byte[] Write(ChatRequest request, RouteTarget target, AnthropicStructuredOutput? structured = null)
    {
        using var body = PooledJsonWriter.Rent(relaxedEscaping: true);
        var writer = body.Writer;
        writer.WriteStartObject();
        writer.WriteString("model", target.Model);
        // Required by Anthropic, unlike OpenAI: the client's (clamped) cap, else the route's default.
        writer.WriteNumber("max_tokens", request.MaxTokens ?? target.DefaultMaxTokens);
        WriteSystem(writer, request.Messages);
        WriteMessages(writer, request.Messages);
        var hasTools = request.Tools is { Count: > 0 };
        if (structured is not null)
        {
            WriteTools(writer, request.Tools, structured);
            // Alone, the response tool is forced; beside the client's tools the model must call one of them ("any"),
            // so it either uses a client tool or answers through the schema.
            writer.WriteStartObject("tool_choice");
            writer.WriteString("type", hasTools ? "any" : "tool");
            if (!hasTools)
            {
                writer.WriteString("name", structured.ToolName);
            }
            writer.WriteEndObject();
        }
        else if (hasTools)
        {
            WriteTools(writer, request.Tools!, null);
            WriteToolChoice(writer, request.ToolChoice, request.Body["parallel_tool_calls"]);
        }
        if (request.Stop.Count > 0)
        {
            writer.WriteStartArray("stop_sequences");
            foreach (var stop in request.Stop)
            {
                writer.WriteStringValue(stop);
            }
            writer.WriteEndArray();
        }
        if (request.Temperature is { } temperature)
        {
            // OpenAI accepts 0..2, Anthropic 0..1 (API reference, "temperature"). Values above 1 are clamped to 1, not
            // scaled: 1 is already Anthropic's most varied setting, and scaling would change the meaning of 0..1.
            writer.WriteNumber("temperature", Math.Min(temperature, 1.0));
        }
        if (request.TopP is { } topP)
        {
            writer.WriteNumber("top_p", topP);
        }
        if (request.Body["user"] is JsonValue user && user.GetValueKind() == JsonValueKind.String)
        {
            // OpenAI's end-user id has its counterpart in metadata.user_id.
            writer.WriteStartObject("metadata");
            writer.WriteString("user_id", user.GetValue<string>());
            writer.WriteEndObject();
        }
        if (request.Stream)
        {
            writer.WriteBoolean("stream", true);
        }
        writer.WriteEndObject();
        return body.ToArray();
    }

    /// <summary>
    /// Anthropic has no system role in <c>messages</c>, only a top-level <c>system</c> (a string or text blocks). Every
    /// system and developer message goes there, in order, wherever it stood in the conversation.
    /// </summary>
    private static void WriteSystem(Utf8JsonWriter writer, JsonArray messages)
    {
        var count = 0;
        JsonObject? only = null;
        foreach (var node in messages)
        {
            if (node is JsonObject m && IsSystem(m))
            {
                count++;
                only = m;
            }
        }
        if (count == 0)
        {
            return;
        }
        if (count == 1 && only!["content"] is JsonValue single && single.GetValueKind() == JsonValueKind.String)
        {
            writer.WriteString("system", single.GetValue<string>());
            return;
        }
        writer.WriteStartArray("system");
        foreach (var node in messages)
        {
            if (node is JsonObject m && IsSystem(m))
            {
                WriteContent(writer, m["content"], "system", media: false);
            }
        }
        writer.WriteEndArray();
    }

    /// <summary>
    /// Anthropic wants user and assistant turns alternating; consecutive messages that map to the same role are merged into
    /// one turn (https://docs.anthropic.com/en/api/messages, "messages"). <c>tool</c> messages become <c>tool_result</c>
    /// blocks of a user turn, so the results of parallel calls end up together in one user turn, as Anthropic requires
    /// (tool use guide, "Handling tool use and tool result content blocks").
    /// </summary>
    private static void WriteMessages(Utf8JsonWriter writer, JsonArray messages)
    {
        writer.WriteStartArray("messages");
        var i = 0;
        while (i < messages.Count)
        {
            if (messages[i] is not JsonObject first || IsSystem(first))
            {
                i++;
                continue;
            }
            var role = AnthropicRole(first);
            // The run of messages [i, end) that share this role, system messages in between skipped.
            var end = i + 1;
            var members = 1;
            while (end < messages.Count && messages[end] is JsonObject next && (IsSystem(next) || AnthropicRole(next) == role))
            {
                if (!IsSystem(next))
                {
                    members++;
                }
                end++;
            }

            writer.WriteStartObject();
            writer.WriteString("role", role);
            if (members == 1 && first["content"] is JsonValue text && text.GetValueKind() == JsonValueKind.String
                && Role(first) is "user" or "assistant" && first["tool_calls"] is not JsonArray { Count: > 0 })
            {
                writer.WriteString("content", text.GetValue<string>());
            }
            else
            {
                writer.WriteStartArray("content");
                for (var k = i; k < end; k++)
                {
                    if (messages[k] is JsonObject m && !IsSystem(m))
                    {
                        WriteBlocks(writer, m, k);
                    }
                }
                writer.WriteEndArray();
            }
            writer.WriteEndObject();
            i = end;
        }
        writer.WriteEndArray();
    }

    private static void WriteBlocks(Utf8JsonWriter writer, JsonObject message, int index)
    {
        switch (Role(message))
        {
            case "tool" or "function":
                writer.WriteStartObject();
                writer.WriteString("type", "tool_result");
                writer.WriteString("tool_use_id", StringOf(message["tool_call_id"]) ?? StringOf(message["name"]) ?? "");
                switch (message["content"])
                {
                    case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                        writer.WriteString("content", v.GetValue<string>());
                        break;
                    case JsonArray:
                        writer.WriteStartArray("content");
                        WriteContent(writer, message["content"], $"messages[{index}]", media: false);
                        writer.WriteEndArray();
                        break;
                }
                writer.WriteEndObject();
                break;
            case "assistant":
                WriteContent(writer, message["content"], $"messages[{index}]", media: false, skipEmptyString: true);
                if (message["tool_calls"] is JsonArray calls)
                {
                    foreach (var call in calls)
                    {
                        WriteToolUse(writer, call as JsonObject, index);
                    }
                }
                break;
            default:
                WriteContent(writer, message["content"], $"messages[{index}]", media: true);
                break;
        }
    }

    /// <summary>An assistant tool call as a <c>tool_use</c> block: its arguments (a JSON string in OpenAI) become the <c>input</c> object.</summary>
    private static void WriteToolUse(Utf8JsonWriter writer, JsonObject? call, int index)
    {
        if (call?["function"] is not JsonObject function)
        {
            throw new UnsupportedRequestException($"'messages[{index}].tool_calls' holds a call that is not a function call.");
        }
        writer.WriteStartObject();
        writer.WriteString("type", "tool_use");
        writer.WriteString("id", StringOf(call["id"]) ?? "");
        writer.WriteString("name", StringOf(function["name"]) ?? "");
        writer.WritePropertyName("input");
        var arguments = StringOf(function["arguments"]);
        JsonNode? input = null;
        if (!string.IsNullOrWhiteSpace(arguments))
        {
            try
            {
                input = JsonNode.Parse(arguments);
            }
            catch (JsonException)
            {
                // A model can emit broken arguments; the conversation must still go on, so they are sent as no input.
            }
        }
        if (input is JsonObject inputObject)
        {
            inputObject.WriteTo(writer);
        }
        else
        {
            // input must be an object.
            writer.WriteStartObject();
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
    }

    /// <summary>
    /// An image or document block. Anthropic takes base64 data with its media type, or (images) a URL it fetches itself
    /// (vision guide, "image" content blocks with <c>source.type</c> <c>base64</c> or <c>url</c>).
    /// </summary>
    private static void WriteMediaBlock(Utf8JsonWriter writer, string blockType, string url, JsonNode? cacheControl, string param)
    {
        writer.WriteStartObject();
        writer.WriteString("type", blockType);
        writer.WriteStartObject("source");
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 2397: data:[<mediatype>][;base64],<data>
            var comma = url.IndexOf(',');
            var header = comma < 0 ? "" : url[5..comma];
            if (!header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            {
                throw new UnsupportedRequestException($"'{param}' must be a base64 data URL or an http(s) URL.");
            }
            writer.WriteString("type", "base64");
            writer.WriteString("media_type", header[..^";base64".Length]);
            writer.WriteString("data", url.AsSpan(comma + 1));
        }
        else if (blockType == "image")
        {
            writer.WriteString("type", "url");
            writer.WriteString("url", url);
        }
        else
        {
            throw new UnsupportedRequestException($"'{param}' must carry its file as a base64 data URL.");
        }
        writer.WriteEndObject();
        WriteCacheControl(writer, cacheControl);
        writer.WriteEndObject();
    }

    /// <summary>
    /// Content as blocks: a string or text parts as text blocks (system prompt, assistant text, tool results); with
    /// <paramref name="media"/> (user turns) also images (data URLs as base64 sources, other URLs as url sources) and PDF
    /// files given as data URLs. Other parts cannot be expressed and are refused.
    /// </summary>
    private static void WriteContent(Utf8JsonWriter writer, JsonNode? content, string param, bool media, bool skipEmptyString = false)
    {
        if (content is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            WriteText(writer, v.GetValue<string>(), null, skipEmptyString);
            return;
        }
        if (content is not JsonArray parts)
        {
            return;
        }
        for (var p = 0; p < parts.Count; p++)
        {
            if (parts[p] is not JsonObject part)
            {
                continue;
            }
            var type = StringOf(part["type"]);
            switch (type)
            {
                case "text":
                    WriteText(writer, StringOf(part["text"]) ?? "", part["cache_control"], skipEmpty: true);
                    break;
                case "refusal":
                    // An earlier refusal the client replays: keep it as the text it was.
                    WriteText(writer, StringOf(part["refusal"]) ?? "", null, skipEmpty: true);
                    break;
                case "image_url" when media:
                    var url = part["image_url"] is JsonObject image ? StringOf(image["url"]) : StringOf(part["image_url"]);
                    if (url is null)
                    {
                        throw new UnsupportedRequestException($"'{param}.content[{p}].image_url.url' is missing.");
                    }
                    WriteMediaBlock(writer, "image", url, part["cache_control"], $"{param}.content[{p}]");
                    break;
                case "file" when media && part["file"] is JsonObject file && StringOf(file["file_data"]) is { } data:
                    WriteMediaBlock(writer, "document", data, part["cache_control"], $"{param}.content[{p}]");
                    break;
                default:
                    throw new UnsupportedRequestException(
                        $"'{param}.content[{p}]' of type '{type}' cannot be sent to an Anthropic model here.");
            }
        }
    }

    /// <summary>A text block. Anthropic refuses empty text blocks, so empty texts beside other content are left out.</summary>
    private static void WriteText(Utf8JsonWriter writer, string text, JsonNode? cacheControl, bool skipEmpty = false)
    {
        if (skipEmpty && text.Length == 0)
        {
            return;
        }
        writer.WriteStartObject();
        writer.WriteString("type", "text");
        writer.WriteString("text", text);
        WriteCacheControl(writer, cacheControl);
        writer.WriteEndObject();
    }

    /// <summary>
    /// Prompt-caching breakpoints (prompt caching guide, <c>cache_control</c>) that a client put on OpenAI content parts,
    /// as OpenRouter's clients do, are kept.
    /// </summary>
    private static void WriteCacheControl(Utf8JsonWriter writer, JsonNode? cacheControl)
    {
        if (cacheControl is JsonObject cc)
        {
            writer.WritePropertyName("cache_control");
            cc.WriteTo(writer);
        }
    }

    /// <summary>OpenAI function tools as Anthropic client tools: name, description, and the parameters schema as <c>input_schema</c>.</summary>
    private static void WriteTools(Utf8JsonWriter writer, JsonArray? tools, AnthropicStructuredOutput? structured)
    {
        writer.WriteStartArray("tools");
        if (structured is not null)
        {
            writer.WriteStartObject();
            writer.WriteString("name", structured.ToolName);
            writer.WriteString("description", structured.Description);
            writer.WritePropertyName("input_schema");
            structured.InputSchema.WriteTo(writer);
            writer.WriteEndObject();
        }
        for (var t = 0; tools is not null && t < tools.Count; t++)
        {
            var tool = (JsonObject)tools[t]!;
            if (StringOf(tool["type"]) != "function")
            {
                throw new UnsupportedRequestException($"'tools[{t}]' of type '{StringOf(tool["type"])}' cannot be sent to an Anthropic model.");
            }
            var function = (JsonObject)tool["function"]!;
            writer.WriteStartObject();
            writer.WriteString("name", StringOf(function["name"]));
            if (StringOf(function["description"]) is { } description)
            {
                writer.WriteString("description", description);
            }
            writer.WritePropertyName("input_schema");
            if (function["parameters"] is JsonObject parameters)
            {
                parameters.WriteTo(writer);
            }
            else
            {
                // input_schema is required; OpenAI allows a function without parameters, which means no arguments.
                writer.WriteStartObject();
                writer.WriteString("type", "object");
                writer.WriteStartObject("properties");
                writer.WriteEndObject();
                writer.WriteEndObject();
            }
            WriteCacheControl(writer, tool["cache_control"]);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }

    /// <summary>
    /// auto → auto, none → none, required → any, a named function → tool; <c>parallel_tool_calls: false</c> becomes
    /// <c>disable_parallel_tool_use</c> (tool use guide, "Forcing tool use" and "Parallel tool use").
    /// </summary>
    private static void WriteToolChoice(Utf8JsonWriter writer, JsonNode? choice, JsonNode? parallel)
    {
        string type;
        string? name = null;
        switch (choice)
        {
            case null:
                type = "auto";
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                type = v.GetValue<string>() switch
                {
                    "auto" => "auto",
                    "none" => "none",
                    "required" => "any",
                    var other => throw new UnsupportedRequestException($"'tool_choice' '{other}' is not one of auto, none, required."),
                };
                break;
            case JsonObject o when StringOf(o["function"]?["name"]) is { } fn:
                type = "tool";
                name = fn;
                break;
            default:
                throw new UnsupportedRequestException("'tool_choice' must be auto, none, required or a named function.");
        }
        var disableParallel = parallel is JsonValue p && p.GetValueKind() == JsonValueKind.False && type != "none";
        if (choice is null && !disableParallel)
        {
            return;
        }
        writer.WriteStartObject("tool_choice");
        writer.WriteString("type", type);
        if (name is not null)
        {
            writer.WriteString("name", name);
        }
        if (disableParallel)
        {
            writer.WriteBoolean("disable_parallel_tool_use", true);
        }
        writer.WriteEndObject();
    }

    private static bool IsSystem(JsonObject message) => Role(message) is "system" or "developer";

    private static string AnthropicRole(JsonObject message) => Role(message) == "assistant" ? "assistant" : "user";

    private static string? Role(JsonObject message) => StringOf(message["role"]);

    private static string? StringOf(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>The client's request holds something the Anthropic Messages API cannot express.</summary>
internal sealed class UnsupportedRequestException(string message) : Exception(message);
