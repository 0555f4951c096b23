using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>
/// Finds the JSON in a model's output. Models not constrained by a grammar wrap it: in a Markdown code fence
/// (<c>```json … ```</c>) or in prose ("Here is the result: {…}"). Tried in order: the whole text, the first fenced block
/// that parses, then the first balanced object or array that parses.
/// </summary>
internal static class JsonExtractor
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 64 };

    /// <summary>Opening brackets tried as the start of the JSON in prose; real answers put it within the first few.</summary>
    private const int MaxCandidates = 16;

    /// <summary>Whether JSON was found; <paramref name="json"/> is the value (null for a literal <c>null</c>).</summary>
    public static bool TryExtract(string text, out JsonNode? json) => TryExtract(text, out json, out _);

    /// <param name="extracted">True when the JSON was found inside a fence or prose rather than being the whole text.</param>
    public static bool TryExtract(string text, out JsonNode? json, out bool extracted)
    {
        extracted = false;
        var trimmed = text.AsSpan().Trim();
        if (TryParse(trimmed, out json))
        {
            return true;
        }
        extracted = true;
        if (TryFenced(text, out json))
        {
            return true;
        }
        // Each candidate costs a scan to its closing bracket: bounded, so prose full of brackets stays linear, not quadratic.
        for (int start = 0, tried = 0; start < text.Length && tried < MaxCandidates; start++)
        {
            if (text[start] is not ('{' or '['))
            {
                continue;
            }
            tried++;
            var end = BalancedEnd(text, start);
            if (end > start && TryParse(text.AsSpan(start, end - start + 1), out json))
            {
                return true;
            }
        }
        json = null;
        return false;
    }

    private static bool TryFenced(string text, out JsonNode? json)
    {
        var at = 0;
        while ((at = text.IndexOf("```", at, StringComparison.Ordinal)) >= 0)
        {
            // The info string (json, JSON, jsonc, …) runs to the end of the fence line.
            var lineEnd = text.IndexOf('\n', at + 3);
            if (lineEnd < 0)
            {
                break;
            }
            var close = text.IndexOf("```", lineEnd + 1, StringComparison.Ordinal);
            if (close < 0)
            {
                break;
            }
            if (TryParse(text.AsSpan(lineEnd + 1, close - lineEnd - 1).Trim(), out json))
            {
                return true;
            }
            at = close + 3;
        }
        json = null;
        return false;
    }

    /// <summary>The index of the bracket closing the one at <paramref name="start"/>, skipping strings; -1 if unbalanced.</summary>
    private static int BalancedEnd(string text, int start)
    {
        var depth = 0;
        var inString = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }
                continue;
            }
            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    if (--depth == 0)
                    {
                        return i;
                    }
                    break;
            }
        }
        return -1;
    }

    private static bool TryParse(ReadOnlySpan<char> candidate, out JsonNode? json)
    {
        json = null;
        if (candidate.IsEmpty)
        {
            return false;
        }
        try
        {
            json = JsonNode.Parse(candidate.ToString(), documentOptions: Options);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
