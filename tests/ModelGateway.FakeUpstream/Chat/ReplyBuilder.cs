using System.Text;
using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// The answer and usage rules of docs/fake-upstream.md ("Deterministic answers"), written once for
/// all three protocols so that the same prompt costs the same whichever wire it arrives on.
/// </summary>
internal static class ReplyBuilder
{
    /// <summary>Every tool call reply counts this many output tokens (contract).</summary>
    public const int ToolCallOutputTokens = 5;

    /// <summary>fault-huge sends its text in chunks of this size: one "word" each, so chunks = words.</summary>
    private const int HugeChunkBytes = 4096;

    // One shared instance: the huge reply is a list of references to it, never one large string.
    private static readonly string HugeChunk = " " + new string('x', HugeChunkBytes - 1);

    public static Reply Build(ChatPrompt prompt, Fault fault, SchemaAnswer schemaAnswer = SchemaAnswer.Valid)
    {
        var inputTokens = CountInputTokens(prompt.Messages);

        if (fault.Kind == FaultKind.Huge)
        {
            var count = (int)Math.Min(int.MaxValue, (long)fault.Value * 1024 * 1024 / HugeChunkBytes);
            return Cap(Enumerable.Repeat(HugeChunk, count).ToList(), prompt.MaxTokens, null, inputTokens);
        }

        var last = prompt.Messages.Count > 0 ? prompt.Messages[^1] : default;
        if (prompt.Tool is { } tool && last.Role == "user" && !last.IsToolResult
            && schemaAnswer is not (SchemaAnswer.InvalidJson or SchemaAnswer.CodeFence))
        {
            var arguments = SchemaAnswers.Apply(tool.ArgumentsJson, schemaAnswer);
            return new Reply
            {
                Chunks = [],
                ToolCall = new ToolCallReply(tool.Name, arguments, Fragment(arguments)),
                Finish = FinishReason.ToolCall,
                InputTokens = inputTokens,
                OutputTokens = ToolCallOutputTokens,
            };
        }

        if (prompt.Json is { } json && !last.IsToolResult)
        {
            return Cap(new List<string>(Fragment(SchemaAnswers.Text(json, prompt.Tool, schemaAnswer))), prompt.MaxTokens, null, inputTokens);
        }
        if (prompt.Tool is not null && schemaAnswer is SchemaAnswer.InvalidJson or SchemaAnswer.CodeFence)
        {
            // A "model" that ignored the forced tool and answered in prose (Anthropic: a text block, no tool_use).
            return Cap(SplitWords(SchemaAnswers.Text(new JsonOutput(null), prompt.Tool, schemaAnswer)), prompt.MaxTokens, null, inputTokens);
        }

        var text = last.IsToolResult ? "Tool said: " + last.ToolResultText : "Echo: " + LastUserText(prompt.Messages);

        string? matched = null;
        var cut = -1;
        foreach (var stop in prompt.Stop)
        {
            if (stop.Length == 0)
            {
                continue;
            }
            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
                matched = stop;
            }
        }
        if (cut >= 0)
        {
            text = text[..cut];
        }

        return Cap(SplitWords(text), prompt.MaxTokens, matched, inputTokens);
    }

    /// <summary>Contract: per message ceil(UTF-8 bytes of its text / 4) + 3.</summary>
    public static int CountInputTokens(IReadOnlyList<PromptMessage> messages)
    {
        var total = 0;
        foreach (var message in messages)
        {
            total += (Encoding.UTF8.GetByteCount(message.Text) + 3) / 4 + 3;
        }
        return total;
    }

    /// <summary>
    /// Splits into chunks of (leading whitespace + one word): "Echo: a b" gives "Echo:", " a", " b".
    /// Trailing whitespace stays on the last chunk so that the chunks always join back to the text.
    /// </summary>
    public static List<string> SplitWords(string text)
    {
        var chunks = new List<string>();
        var start = 0;
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }
            if (i == text.Length)
            {
                break;
            }
            while (i < text.Length && !char.IsWhiteSpace(text[i]))
            {
                i++;
            }
            chunks.Add(text[start..i]);
            start = i;
        }
        if (start < text.Length)
        {
            if (chunks.Count == 0)
            {
                chunks.Add(text[start..]);
            }
            else
            {
                chunks[^1] += text[start..];
            }
        }
        return chunks;
    }

    /// <summary>
    /// Splits tool-call arguments into several pieces, the way providers stream them
    /// (openai_chat_stream_tool_call.sse, anthropic_stream_tool_use.sse); never inside a surrogate pair.
    /// </summary>
    public static IReadOnlyList<string> Fragment(string json)
    {
        var size = Math.Clamp(json.Length / 3, 1, 8);
        var fragments = new List<string>();
        var i = 0;
        while (i < json.Length)
        {
            var end = Math.Min(json.Length, i + size);
            if (end < json.Length && char.IsHighSurrogate(json[end - 1]))
            {
                end++;
            }
            fragments.Add(json[i..end]);
            i = end;
        }
        return fragments;
    }

    private static string LastUserText(IReadOnlyList<PromptMessage> messages)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            if (messages[i].Role == "user")
            {
                return messages[i].Text;
            }
        }
        return "";
    }

    private static Reply Cap(List<string> chunks, int? maxTokens, string? matchedStop, int inputTokens)
    {
        var finish = matchedStop is null ? FinishReason.Complete : FinishReason.StopSequence;
        if (maxTokens is { } max && chunks.Count > max)
        {
            chunks.RemoveRange(max, chunks.Count - max);
            finish = FinishReason.Length;
            matchedStop = null;
        }
        return new Reply
        {
            Chunks = chunks,
            Finish = finish,
            MatchedStop = matchedStop,
            InputTokens = inputTokens,
            OutputTokens = chunks.Count,
        };
    }
}
