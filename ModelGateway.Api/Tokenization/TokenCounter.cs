using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Tokenization;

/// <summary>Counts tokens the way OpenAI bills them, for estimates when a provider reports no usage and for budget reservations.</summary>
internal interface ITokenCounter
{
    /// <summary>Tokens of a plain text.</summary>
    int CountText(string text);

    /// <summary>Prompt tokens of OpenAI chat messages, including the per-message framing and the reply priming.</summary>
    int CountMessages(JsonArray messages);
}

/// <summary>
/// <see cref="ITokenCounter"/> over the <c>o200k_base</c> encoding (GPT-4o and later; <see cref="O200kEncoding"/>, ranks
/// from the Microsoft.ML.Tokenizers.Data.O200kBase package, so nothing is downloaded at run time). The encoding is
/// immutable after loading and safe to share between threads; it is loaded on first use (about 0.1-0.2 s). For models
/// with another tokenizer (Claude, Llama) the count is an estimate, which is all the callers need.
/// </summary>
internal sealed class TokenCounter : ITokenCounter
{
    /// <summary>
    /// The framing OpenAI adds around every message (<c>&lt;|start|&gt;role ... &lt;|end|&gt;</c>) and the priming of the
    /// reply (<c>&lt;|start|&gt;assistant&lt;|message|&gt;</c>): 3 tokens each, 1 more for a <c>name</c>, as in the OpenAI
    /// cookbook's "How to count tokens with tiktoken" (num_tokens_from_messages).
    /// </summary>
    private const int TokensPerMessage = 3;
    private const int TokensPerName = 1;
    private const int ReplyPriming = 3;

    private static readonly Lazy<O200kEncoding> SharedEncoding = new(O200kEncoding.Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public int CountText(string text) => text.Length == 0 ? 0 : SharedEncoding.Value.CountTokens(text);

    public int CountMessages(JsonArray messages)
    {
        var total = ReplyPriming;
        foreach (var node in messages)
        {
            if (node is not JsonObject message)
            {
                continue;
            }
            total += TokensPerMessage;
            foreach (var (name, value) in message)
            {
                switch (name)
                {
                    case "role":
                        total += CountString(value);
                        break;
                    case "name":
                        total += CountString(value) + TokensPerName;
                        break;
                    case "content":
                        total += CountContent(value);
                        break;
                    case "tool_calls" when value is JsonArray calls:
                        foreach (var call in calls)
                        {
                            if (call?["function"] is JsonObject function)
                            {
                                total += CountString(function["name"]) + CountString(function["arguments"]);
                            }
                        }
                        break;
                    case "tool_call_id":
                        total += CountString(value);
                        break;
                }
            }
        }
        return total;
    }

    /// <summary>A string content, or the text of its parts; images and audio are not counted (their cost is not text-based).</summary>
    private int CountContent(JsonNode? content)
    {
        if (content is JsonArray parts)
        {
            var total = 0;
            foreach (var part in parts)
            {
                if (part is JsonObject p)
                {
                    total += CountString(p["text"]);
                }
            }
            return total;
        }
        return CountString(content);
    }

    private int CountString(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? CountText(v.GetValue<string>()) : 0;
}
