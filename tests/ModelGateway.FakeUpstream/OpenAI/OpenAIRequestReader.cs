using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;

namespace ModelGateway.FakeUpstream.OpenAI;

/// <summary>
/// Reads an OpenAI chat completions request (openai_chat_request.json, openai_chat_tools_request.json,
/// openai_chat_stream_tool_call_request.json). llama.cpp's server reads the same body, so
/// LlamaCpp/ reuses this and adds its extensions.
/// </summary>
internal static class OpenAIRequestReader
{
    public static ProtocolError? TryRead(JsonElement root, out ChatPrompt prompt)
    {
        prompt = null!;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "The request body must be a JSON object.");
        }
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
        }

        var list = new List<PromptMessage>(messages.GetArrayLength());
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object)
            {
                return new ProtocolError(ErrorKind.InvalidRequest, "Each message must be an object.", "messages");
            }
            var role = String(message, "role") ?? "";
            var text = message.TryGetProperty("content", out var content) ? TextOf(content) : "";
            // "tool" results (and the legacy "function" role) are what the fake answers "Tool said: …" to.
            list.Add(new PromptMessage(role, text, role is "tool" or "function" ? text : null));
        }

        // max_completion_tokens superseded max_tokens; OpenAI accepts either.
        var maxTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens");
        if (maxTokens is < 1)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "max_tokens must be at least 1.", "max_tokens", "integer_below_min_value");
        }

        prompt = new ChatPrompt
        {
            Model = String(root, "model"),
            Messages = list,
            Tool = ChooseTool(root),
            Json = JsonOutputOf(root),
            MaxTokens = maxTokens,
            Stop = Stop(root),
            Stream = root.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True,
            IncludeUsage = root.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object
                && options.TryGetProperty("include_usage", out var include) && include.ValueKind == JsonValueKind.True,
        };
        return null;
    }

    /// <summary>
    /// The output constraint: <c>response_format</c> json_schema (schema at <c>json_schema.schema</c>), json_object
    /// (llama.cpp also takes a <c>schema</c> beside it), or llama.cpp's top-level <c>json_schema</c>.
    /// </summary>
    private static JsonOutput? JsonOutputOf(JsonElement root)
    {
        if (root.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object)
        {
            switch (String(format, "type"))
            {
                case "json_schema":
                    return new JsonOutput(format.TryGetProperty("json_schema", out var js) && js.ValueKind == JsonValueKind.Object
                        && js.TryGetProperty("schema", out var schema) && schema.ValueKind == JsonValueKind.Object ? schema.Clone() : null);
                case "json_object":
                    return new JsonOutput(format.TryGetProperty("schema", out var inline) && inline.ValueKind == JsonValueKind.Object
                        ? inline.Clone() : null);
            }
        }
        if (root.TryGetProperty("json_schema", out var topLevel) && topLevel.ValueKind == JsonValueKind.Object)
        {
            return new JsonOutput(topLevel.Clone());
        }
        return null;
    }

    /// <summary>A string content, or the text parts of a content array joined with a space (contract).</summary>
    public static string TextOf(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }
        if (content.ValueKind != JsonValueKind.Array)
        {
            return "";
        }
        string? joined = null;
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object && String(part, "type") is "text" or null && String(part, "text") is { } text)
            {
                joined = joined is null ? text : joined + " " + text;
            }
        }
        return joined ?? "";
    }

    public static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static int? Int(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) ? n : null;

    /// <summary><c>stop</c> is a string or an array of up to 4 strings.</summary>
    private static IReadOnlyList<string> Stop(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop))
        {
            return [];
        }
        if (stop.ValueKind == JsonValueKind.String)
        {
            return [stop.GetString()!];
        }
        var list = new List<string>();
        if (stop.ValueKind == JsonValueKind.Array)
        {
            foreach (var s in stop.EnumerateArray())
            {
                if (s.ValueKind == JsonValueKind.String)
                {
                    list.Add(s.GetString()!);
                }
            }
        }
        return list;
    }

    /// <summary>
    /// The contract calls the first tool; <c>tool_choice: "none"</c> calls none and a named
    /// <c>{"type":"function","function":{"name":…}}</c> calls that one, as OpenAI does.
    /// </summary>
    private static ToolInvocation? ChooseTool(JsonElement root)
    {
        if (!root.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array || tools.GetArrayLength() == 0)
        {
            return null;
        }
        string? wanted = null;
        if (root.TryGetProperty("tool_choice", out var choice))
        {
            if (choice.ValueKind == JsonValueKind.String && choice.GetString() == "none")
            {
                return null;
            }
            if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object)
            {
                wanted = String(f, "name");
            }
        }
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("function", out var function)
                || function.ValueKind != JsonValueKind.Object || String(function, "name") is not { } name)
            {
                continue;
            }
            if (wanted is null || wanted == name)
            {
                JsonElement? parameters = function.TryGetProperty("parameters", out var p) ? p : null;
                return new ToolInvocation(name, ToolArguments.FromSchema(parameters));
            }
        }
        return null;
    }
}
