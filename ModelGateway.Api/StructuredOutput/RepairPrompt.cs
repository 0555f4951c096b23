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
    /// <summary>
    /// The repair turn's instructions are cut to this many characters, so the repair call's worst case is bounded and can be
    /// reserved before the first call (<see cref="ReserveTokens"/>).
    /// </summary>
    public const int MaxInstructionChars = 2000;

    /// <summary>Prompt tokens reserved for the repair turn and the two added messages' framing: at most two per character.</summary>
    public const int ReserveTokens = 2 * MaxInstructionChars + 16;

    /// <summary>The messages to send: a copy of <paramref name="messages"/> plus the two repair turns.</summary>
    public static JsonArray BuildMessages(JsonArray messages, string? invalidOutput, IReadOnlyList<SchemaViolation> violations)
    {
        const string Ending = "Reply again with only the corrected JSON value, with no explanation and no code fence.";
        var repaired = (JsonArray)messages.DeepClone();
        repaired.Add(new JsonObject { ["role"] = "assistant", ["content"] = invalidOutput ?? "" });
        var text = new StringBuilder("Your previous reply does not match the required JSON Schema:\n");
        for (var i = 0; i < violations.Count; i++)
        {
            var line = "- " + violations[i] + "\n";
            if (text.Length + line.Length + Ending.Length > MaxInstructionChars)
            {
                text.Append("- and ").Append(violations.Count - i).Append(" more\n");
                break;
            }
            text.Append(line);
        }
        text.Append(Ending);
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
