using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>
/// The one repair attempt: the original conversation, the invalid output as the assistant's turn, then a user turn that lists
/// what was wrong and asks for the corrected JSON alone. Same constraint, same model, never streamed.
/// </summary>
internal static class RepairPrompt
{
    /// <summary>The messages to send: a copy of <paramref name="messages"/> plus the two repair turns.</summary>
    public static JsonArray BuildMessages(JsonArray messages, string? invalidOutput, IReadOnlyList<SchemaViolation> violations)
    {
        var repaired = (JsonArray)messages.DeepClone();
        repaired.Add(new JsonObject { ["role"] = "assistant", ["content"] = invalidOutput ?? "" });
        var text = new StringBuilder("Your previous reply does not match the required JSON Schema:\n");
        foreach (var violation in violations)
        {
            text.Append("- ").Append(violation).Append('\n');
        }
        text.Append("Reply again with only the corrected JSON value, with no explanation and no code fence.");
        repaired.Add(new JsonObject { ["role"] = "user", ["content"] = text.ToString() });
        return repaired;
    }

    /// <summary>
    /// The whole repair request: the client's body with the repair messages, <c>stream</c> off (the answer is checked before the
    /// client sees it) and the original's clamped output cap. Parsed like a client request so adapters see nothing unusual.
    /// </summary>
    public static ChatRequest BuildRequest(ChatRequest original, string? invalidOutput, IReadOnlyList<SchemaViolation> violations)
    {
        var body = (JsonObject)original.Body.DeepClone();
        body["messages"] = BuildMessages(original.Messages, invalidOutput, violations);
        body.Remove("stream");
        body.Remove("stream_options");
        var request = ChatRequest.Parse(System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()), out OpenAIError? error)
                      ?? throw new InvalidOperationException($"A repair request failed to parse: {error?.Message}");
        if (original.MaxTokens is { } cap)
        {
            request.ClampMaxTokens(cap);
        }
        return request;
    }
}
