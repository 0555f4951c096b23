using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;
using static ModelGateway.FakeUpstream.OpenAI.OpenAIRequestReader;

namespace ModelGateway.FakeUpstream.Anthropic;

/// <summary>
/// Reads an Anthropic Messages request (anthropic_request_system_tools.json,
/// anthropic_request_stream_tool_use.json, anthropic_request_tool_result.json). Required fields and
/// their error messages follow the API: model, max_tokens and messages.
/// </summary>
internal static class AnthropicRequestReader
{
    public static ProtocolError? TryRead(JsonElement root, out ChatPrompt prompt)
    {
        prompt = null!;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "The request body must be a JSON object.");
        }
        if (String(root, "model") is not { } model)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "model: Field required");
        }
        // Unlike OpenAI, Anthropic has no default for max_tokens: a request without it is refused.
        if (!root.TryGetProperty("max_tokens", out var maxElement))
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "max_tokens: Field required");
        }
        if (Int(root, "max_tokens") is not { } maxTokens || maxTokens < 1)
        {
            return new ProtocolError(ErrorKind.InvalidRequest,
                maxElement.ValueKind == JsonValueKind.Number ? "max_tokens: Input should be greater than or equal to 1" : "max_tokens: Input should be a valid integer");
        }
        if (!root.TryGetProperty("messages", out var messages))
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "messages: Field required");
        }
        if (messages.ValueKind != JsonValueKind.Array)
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "messages: Input should be a valid list");
        }

        var list = new List<PromptMessage>(messages.GetArrayLength() + 1);
        // The system prompt counts as one message for input tokens, so that a conversation costs the
        // same whether its system text travels as an OpenAI message or as Anthropic's top-level field.
        if (root.TryGetProperty("system", out var system) && system.ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            list.Add(new PromptMessage("system", TextOf(system), null));
        }
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object || String(message, "role") is not ("user" or "assistant") )
            {
                return new ProtocolError(ErrorKind.InvalidRequest, "messages: each message needs a role of \"user\" or \"assistant\"");
            }
            list.Add(ReadMessage(message));
        }

        prompt = new ChatPrompt
        {
            Model = model,
            Messages = list,
            Tool = ChooseTool(root),
            MaxTokens = maxTokens,
            Stop = StopSequences(root),
            Stream = root.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True,
            IncludeUsage = true,
        };
        return null;
    }

    /// <summary>
    /// Content is a string or blocks: text blocks and tool_result contents count as text (joined with
    /// a space); tool_use and image blocks carry none. A message with tool_result blocks is a tool result.
    /// </summary>
    private static PromptMessage ReadMessage(JsonElement message)
    {
        var role = String(message, "role")!;
        if (!message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array)
        {
            return new PromptMessage(role, message.TryGetProperty("content", out content) ? TextOf(content) : "", null);
        }
        string? text = null;
        string? toolResult = null;
        foreach (var block in content.EnumerateArray())
        {
            if (block.ValueKind != JsonValueKind.Object)
            {
                continue;
            }
            switch (String(block, "type"))
            {
                case "text" when String(block, "text") is { } t:
                    text = text is null ? t : text + " " + t;
                    break;
                case "tool_result":
                    var r = block.TryGetProperty("content", out var c) ? TextOf(c) : "";
                    toolResult = toolResult is null ? r : toolResult + " " + r;
                    text = text is null ? r : text + " " + r;
                    break;
            }
        }
        return new PromptMessage(role, text ?? "", toolResult);
    }

    private static IReadOnlyList<string> StopSequences(JsonElement root)
    {
        var list = new List<string>();
        if (root.TryGetProperty("stop_sequences", out var stops) && stops.ValueKind == JsonValueKind.Array)
        {
            foreach (var s in stops.EnumerateArray())
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
    /// The contract calls the first tool; <c>tool_choice {"type":"none"}</c> calls none and
    /// <c>{"type":"tool","name":…}</c> calls the named one, as Anthropic does.
    /// </summary>
    private static ToolInvocation? ChooseTool(JsonElement root)
    {
        if (!root.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array)
        {
            return null;
        }
        string? wanted = null;
        if (root.TryGetProperty("tool_choice", out var choice) && choice.ValueKind == JsonValueKind.Object)
        {
            switch (String(choice, "type"))
            {
                case "none":
                    return null;
                case "tool":
                    wanted = String(choice, "name");
                    break;
            }
        }
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind == JsonValueKind.Object && String(tool, "name") is { } name && (wanted is null || wanted == name))
            {
                JsonElement? schema = tool.TryGetProperty("input_schema", out var s) ? s : null;
                return new ToolInvocation(name, ToolArguments.FromSchema(schema));
            }
        }
        return null;
    }
}
