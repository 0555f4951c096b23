using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.ChatCompletions;

/// <summary>
/// A client's <c>POST /v1/chat/completions</c> body, parsed once. <see cref="Body"/> keeps every field as sent
/// (unknown fields are forwarded verbatim by the OpenAI-compatible adapter); the typed properties are the
/// fields the gateway itself acts on. See https://platform.openai.com/docs/api-reference/chat/create.
/// </summary>
internal sealed class ChatRequest
{
    /// <summary>Nesting deeper than this is refused: no real chat request comes close, and deep nesting is a DoS vector.</summary>
    public const int MaxJsonDepth = 64;

    private static readonly JsonNodeOptions NodeOptions = new() { PropertyNameCaseInsensitive = false };
    // Duplicate names are refused at parse time: JsonObject materialises lazily and throws ArgumentException on the
    // first access to an object with a repeated name (a 500, possibly after admission, in an adapter), and a repeated
    // "model" would be read one way here and perhaps another way by a provider.
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = MaxJsonDepth, AllowDuplicateProperties = false };

    private ChatRequest(JsonObject body, string model, JsonArray messages)
    {
        Body = body;
        Model = model;
        Messages = messages;
    }

    /// <summary>The body as sent. Adapters must not mutate it: a request may be tried against several targets.</summary>
    public JsonObject Body { get; }

    /// <summary>The public model alias the client asked for.</summary>
    public string Model { get; }

    public JsonArray Messages { get; }

    public bool Stream { get; private init; }

    /// <summary>Whether the client asked for the final usage chunk (<c>stream_options.include_usage</c>).</summary>
    public bool IncludeUsage { get; private init; }

    /// <summary>The output-token cap after the tenant's clamp (<see cref="ClampMaxTokens"/>); null when the client set none.</summary>
    public int? MaxTokens { get; private set; }

    public double? Temperature { get; private init; }

    public double? TopP { get; private init; }

    /// <summary>Stop sequences (<c>stop</c> as a string or an array).</summary>
    public IReadOnlyList<string> Stop { get; private init; } = [];

    public JsonArray? Tools { get; private init; }

    public JsonNode? ToolChoice { get; private init; }

    public JsonObject? ResponseFormat { get; private init; }

    /// <summary>Lowers the output cap to <paramref name="cap"/> (the original gateway clamped, not refused).</summary>
    public void ClampMaxTokens(int cap)
    {
        if (MaxTokens is null || MaxTokens > cap)
        {
            MaxTokens = cap;
        }
    }

    /// <summary>
    /// Null when the request's Content-Type is one we parse: JSON (<c>application/json</c> or a <c>+json</c> type) in UTF-8
    /// (RFC 8259 §8.1), or none at all (hand-written clients); otherwise a 415. A form or text body is refused here, not
    /// guessed at: <c>curl -d</c> without a Content-Type header sends <c>application/x-www-form-urlencoded</c>.
    /// </summary>
    public static OpenAIError? CheckContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }
        if (Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
            && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || (media.MediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
            && (!media.Charset.HasValue || media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }
        return new OpenAIError(StatusCodes.Status415UnsupportedMediaType,
            $"Unsupported Content-Type '{contentType}': send the request body as 'application/json' (UTF-8).",
            "invalid_request_error", null, "unsupported_media_type");
    }

    /// <summary>Parses and validates a request body. Returns null and an error when the body is not a request we accept.</summary>
    public static ChatRequest? Parse(ReadOnlyMemory<byte> utf8Body, out OpenAIError? error)
    {
        error = null;
        // Checked up front (vectorised): invalid bytes inside a property name would otherwise surface later, while the
        // lazily materialised DOM is read, as an InvalidOperationException instead of a 400.
        if (!System.Text.Unicode.Utf8.IsValid(utf8Body.Span))
        {
            error = OpenAIError.InvalidRequest("The request body is not valid UTF-8.", code: "invalid_json");
            return null;
        }
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(utf8Body.Span, NodeOptions, DocumentOptions);
        }
        catch (JsonException ex)
        {
            error = OpenAIError.InvalidRequest(
                $"We could not parse the JSON body of your request: {ex.Message}", code: "invalid_json");
            return null;
        }
        catch (ArgumentException)
        {
            // Thrown for invalid UTF-8 sequences.
            error = OpenAIError.InvalidRequest("The request body is not valid UTF-8 JSON.", code: "invalid_json");
            return null;
        }

        if (root is not JsonObject body)
        {
            error = OpenAIError.InvalidRequest("The request body must be a JSON object.", code: "invalid_json");
            return null;
        }

        if (!TryGetString(body, "model", required: true, out var model, out error))
        {
            return null;
        }
        if (model!.Length == 0)
        {
            error = OpenAIError.InvalidRequest("'model' must not be empty.", "model");
            return null;
        }

        if (body["messages"] is not JsonArray messages)
        {
            error = OpenAIError.InvalidRequest(
                body.ContainsKey("messages") ? "'messages' must be an array." : "Missing required parameter: 'messages'.",
                "messages", body.ContainsKey("messages") ? "invalid_type" : "missing_required_parameter");
            return null;
        }
        if (messages.Count == 0)
        {
            error = OpenAIError.InvalidRequest("'messages' must contain at least one message.", "messages", "empty_array");
            return null;
        }
        if (!ValidateMessages(messages, out error))
        {
            return null;
        }
        if (!HasAnyContent(messages))
        {
            // Each empty message is allowed (an empty system prompt, an empty tool result), but a request whose messages
            // are all empty gives the model nothing to answer; providers differ on it (Anthropic refuses empty text), so
            // it is refused here, before anything is reserved.
            error = OpenAIError.InvalidRequest("The messages have no content: at least one message must have non-empty content.",
                "messages", "empty_content");
            return null;
        }

        if (!TryGetBool(body, "stream", out var stream, out error)
            || !TryGetNumber(body, "temperature", 0, 2, out var temperature, out error)
            || !TryGetNumber(body, "top_p", 0, 1, out var topP, out error)
            || !TryGetMaxTokens(body, out var maxTokens, out error)
            || !TryGetStop(body, out var stop, out error)
            || !TryGetTools(body, out var tools, out error))
        {
            return null;
        }

        var includeUsage = false;
        if (body["stream_options"] is { } streamOptions)
        {
            if (streamOptions is not JsonObject so)
            {
                error = OpenAIError.InvalidRequest("'stream_options' must be an object.", "stream_options", "invalid_type");
                return null;
            }
            if (!TryGetBool(so, "include_usage", out includeUsage, out error, "stream_options.include_usage"))
            {
                return null;
            }
        }

        JsonObject? responseFormat = null;
        if (body["response_format"] is { } rf)
        {
            if (rf is not JsonObject rfo || rfo["type"] is not JsonValue typeValue || typeValue.GetValueKind() != JsonValueKind.String)
            {
                error = OpenAIError.InvalidRequest("'response_format' must be an object with a string 'type'.", "response_format", "invalid_type");
                return null;
            }
            var type = typeValue.GetValue<string>();
            if (type is not ("text" or "json_object" or "json_schema"))
            {
                error = OpenAIError.InvalidRequest(
                    $"Invalid value for 'response_format.type': '{type}'. Supported values are 'text', 'json_object' and 'json_schema'.",
                    "response_format.type", "invalid_value");
                return null;
            }
            responseFormat = rfo;
        }

        return new ChatRequest(body, model, messages)
        {
            Stream = stream,
            IncludeUsage = stream && includeUsage,
            Temperature = temperature,
            TopP = topP,
            MaxTokens = maxTokens,
            Stop = stop,
            Tools = tools,
            ToolChoice = body["tool_choice"],
            ResponseFormat = responseFormat,
        };
    }

    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    private static bool ValidateMessages(JsonArray messages, out OpenAIError? error)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject message)
            {
                error = OpenAIError.InvalidRequest($"'messages[{i}]' must be an object.", $"messages[{i}]", "invalid_type");
                return false;
            }
            if (message["role"] is not JsonValue roleValue || roleValue.GetValueKind() != JsonValueKind.String
                || Array.IndexOf(Roles, roleValue.GetValue<string>()) < 0)
            {
                error = OpenAIError.InvalidRequest(
                    $"'messages[{i}].role' must be one of 'system', 'developer', 'user', 'assistant', 'tool'.",
                    $"messages[{i}].role", "invalid_value");
                return false;
            }
            var role = roleValue.GetValue<string>();
            var content = message["content"];
            if (!ValidateToolCalls(message, i, out error))
            {
                return false;
            }
            var hasToolCalls = message["tool_calls"] is JsonArray { Count: > 0 };
            switch (content)
            {
                case null when role == "assistant" && hasToolCalls:
                    break;
                case null:
                    error = OpenAIError.InvalidRequest($"'messages[{i}].content' is required.", $"messages[{i}].content", "missing_required_parameter");
                    return false;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    break;
                case JsonArray parts:
                    for (var p = 0; p < parts.Count; p++)
                    {
                        if (parts[p] is not JsonObject part || part["type"] is not JsonValue pt || pt.GetValueKind() != JsonValueKind.String)
                        {
                            error = OpenAIError.InvalidRequest($"'messages[{i}].content[{p}]' must be an object with a string 'type'.",
                                $"messages[{i}].content[{p}]", "invalid_type");
                            return false;
                        }
                    }
                    break;
                default:
                    error = OpenAIError.InvalidRequest($"'messages[{i}].content' must be a string or an array of content parts.",
                        $"messages[{i}].content", "invalid_type");
                    return false;
            }
            if (role == "tool" && (message["tool_call_id"] is not JsonValue id || id.GetValueKind() != JsonValueKind.String))
            {
                error = OpenAIError.InvalidRequest($"'messages[{i}].tool_call_id' is required for tool messages.",
                    $"messages[{i}].tool_call_id", "missing_required_parameter");
                return false;
            }
        }
        error = null;
        return true;
    }

    /// <summary>Whether any message carries something: a non-empty string, a content part, or tool calls.</summary>
    private static bool HasAnyContent(JsonArray messages)
    {
        foreach (var message in messages)
        {
            var m = (JsonObject)message!;
            if (m["content"] switch
                {
                    JsonArray parts => parts.Count > 0,
                    JsonValue text => text.GetValue<string>().Length > 0,
                    _ => false,
                } || m["tool_calls"] is JsonArray { Count: > 0 })
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>An assistant's <c>tool_calls</c>: objects with a string id and a function with a string name and arguments.</summary>
    private static bool ValidateToolCalls(JsonObject message, int i, out OpenAIError? error)
    {
        error = null;
        switch (message["tool_calls"])
        {
            case null:
                return true;
            case JsonArray calls:
                for (var c = 0; c < calls.Count; c++)
                {
                    if (calls[c] is not JsonObject call
                        || call["id"] is not JsonValue id || id.GetValueKind() != JsonValueKind.String
                        || call["function"] is not JsonObject function
                        || function["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String
                        || (function["arguments"] is { } args && args.GetValueKind() != JsonValueKind.String))
                    {
                        error = OpenAIError.InvalidRequest(
                            $"'messages[{i}].tool_calls[{c}]' must be an object with a string 'id' and a 'function' with a string 'name' and string 'arguments'.",
                            $"messages[{i}].tool_calls[{c}]", "invalid_value");
                        return false;
                    }
                }
                return true;
            default:
                error = OpenAIError.InvalidRequest($"'messages[{i}].tool_calls' must be an array.", $"messages[{i}].tool_calls", "invalid_type");
                return false;
        }
    }

    private static bool TryGetString(JsonObject body, string name, bool required, out string? value, out OpenAIError? error)
    {
        value = null;
        error = null;
        var node = body[name];
        if (node is null)
        {
            if (required)
            {
                error = OpenAIError.InvalidRequest($"Missing required parameter: '{name}'.", name, "missing_required_parameter");
                return false;
            }
            return true;
        }
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            value = v.GetValue<string>();
            return true;
        }
        error = OpenAIError.InvalidRequest($"'{name}' must be a string.", name, "invalid_type");
        return false;
    }

    private static bool TryGetBool(JsonObject body, string name, out bool value, out OpenAIError? error, string? param = null)
    {
        value = false;
        error = null;
        var node = body[name];
        if (node is null)
        {
            return true;
        }
        if (node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
        {
            value = v.GetValue<bool>();
            return true;
        }
        error = OpenAIError.InvalidRequest($"'{param ?? name}' must be a boolean.", param ?? name, "invalid_type");
        return false;
    }

    private static bool TryGetNumber(JsonObject body, string name, double min, double max, out double? value, out OpenAIError? error)
    {
        value = null;
        error = null;
        var node = body[name];
        if (node is null)
        {
            return true;
        }
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            error = OpenAIError.InvalidRequest($"'{name}' must be a number.", name, "invalid_type");
            return false;
        }
        // A number beyond double's range (1e400) is still a number, only out of range: invalid_value, like 3 for temperature.
        if (!v.TryGetValue<double>(out var d) || d < min || d > max)
        {
            error = OpenAIError.InvalidRequest($"'{name}' must be between {min} and {max}; got {v.ToJsonString()}.", name, "invalid_value");
            return false;
        }
        value = d;
        return true;
    }

    private static bool TryGetMaxTokens(JsonObject body, out int? value, out OpenAIError? error)
    {
        value = null;
        error = null;
        // max_completion_tokens is the current name; max_tokens the deprecated one. Honour whichever is smaller.
        foreach (var name in (ReadOnlySpan<string>)["max_tokens", "max_completion_tokens"])
        {
            var node = body[name];
            if (node is null)
            {
                continue;
            }
            if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
            {
                error = OpenAIError.InvalidRequest($"'{name}' must be an integer.", name, "invalid_type");
                return false;
            }
            // JSON has one number type: 1e3 is the integer 1000, and 2^64 or 1e400 is an integer out of range (invalid_value)
            // rather than a non-integer; only a fraction is invalid_type.
            if (!v.TryGetValue<long>(out var n))
            {
                var finite = v.TryGetValue<double>(out var d); // false beyond double's range
                if (finite && d != Math.Floor(d))
                {
                    error = OpenAIError.InvalidRequest($"'{name}' must be an integer.", name, "invalid_type");
                    return false;
                }
                n = finite ? (long)Math.Clamp(d, -1, 1e8) : long.MaxValue;
            }
            if (n < 1 || n > 10_000_000)
            {
                error = OpenAIError.InvalidRequest($"'{name}' must be a positive integer no larger than 10000000; got {v.ToJsonString()}.", name, "invalid_value");
                return false;
            }
            value = value is null ? (int)n : Math.Min(value.Value, (int)n);
        }
        return true;
    }

    private static bool TryGetStop(JsonObject body, out IReadOnlyList<string> stop, out OpenAIError? error)
    {
        stop = [];
        error = null;
        switch (body["stop"])
        {
            case null:
                return true;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                stop = [v.GetValue<string>()];
                return true;
            case JsonArray a when a.Count <= 4:
                var list = new List<string>(a.Count);
                foreach (var item in a)
                {
                    if (item is not JsonValue s || s.GetValueKind() != JsonValueKind.String)
                    {
                        error = OpenAIError.InvalidRequest("'stop' must be a string or an array of up to 4 strings.", "stop", "invalid_type");
                        return false;
                    }
                    list.Add(s.GetValue<string>());
                }
                stop = list;
                return true;
            default:
                error = OpenAIError.InvalidRequest("'stop' must be a string or an array of up to 4 strings.", "stop", "invalid_type");
                return false;
        }
    }

    private static readonly System.Buffers.SearchValues<char> ToolNameChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

    private static bool TryGetTools(JsonObject body, out JsonArray? tools, out OpenAIError? error)
    {
        tools = null;
        error = null;
        var node = body["tools"];
        if (node is null)
        {
            return true;
        }
        if (node is not JsonArray array)
        {
            error = OpenAIError.InvalidRequest("'tools' must be an array.", "tools", "invalid_type");
            return false;
        }
        var names = array.Count > 1 ? new HashSet<string>(StringComparer.Ordinal) : null;
        for (var i = 0; i < array.Count; i++)
        {
            // Names as OpenAI documents them (a-z, A-Z, 0-9, '_' and '-', at most 64); Anthropic asks the same, so a name
            // every provider would refuse is refused before anything is reserved.
            if (array[i] is not JsonObject tool || tool["type"]?.GetValueKind() != JsonValueKind.String
                || tool["function"] is not JsonObject function
                || function["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String
                || name.GetValue<string>() is not { Length: > 0 and <= 64 } text || text.AsSpan().ContainsAnyExcept(ToolNameChars))
            {
                error = OpenAIError.InvalidRequest(
                    $"'tools[{i}]' must be an object with 'type' and 'function.name' (1 to 64 letters, digits, '_' or '-').",
                    $"tools[{i}]", "invalid_value");
                return false;
            }
            if (names is not null && !names.Add(text))
            {
                // Two tools of one name: the model's call could not say which was meant.
                error = OpenAIError.InvalidRequest($"'tools[{i}].function.name' repeats the name '{text}' of an earlier tool.",
                    $"tools[{i}].function.name", "duplicate_tool_name");
                return false;
            }
            if (function["parameters"] is { } parameters && parameters is not JsonObject)
            {
                error = OpenAIError.InvalidRequest($"'tools[{i}].function.parameters' must be a JSON Schema object.",
                    $"tools[{i}].function.parameters", "invalid_type");
                return false;
            }
        }
        tools = array;
        return true;
    }
}
