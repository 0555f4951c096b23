using System.Text;
using System.Text.Json.Nodes;

namespace ModelGateway.Realtime.Chat;

/// <summary>
/// Folds <c>chat.completion.chunk</c> objects into the <c>chat.completion</c> the same request would
/// have answered without streaming (OpenAI API reference, "The chat completion chunk object"): content
/// and tool-call arguments are concatenated per choice and per tool-call index; the usage chunk
/// (stream_options.include_usage, empty choices) supplies usage.
/// </summary>
internal sealed class CompletionAccumulator
{
    private readonly SortedDictionary<int, ChoiceState> _choices = [];
    private string? _id;
    private long? _created;
    private string? _model;
    private string? _systemFingerprint;
    private JsonNode? _usage;

    public int Chunks { get; private set; }

    public void Add(JsonObject chunk)
    {
        Chunks++;
        _id ??= chunk["id"]?.GetValue<string>();
        _created ??= chunk["created"]?.GetValue<long>();
        _model ??= chunk["model"]?.GetValue<string>();
        _systemFingerprint ??= (string?)chunk["system_fingerprint"];
        if (chunk["usage"] is JsonObject usage)
        {
            _usage = usage.DeepClone();
        }
        if (chunk["choices"] is not JsonArray choices)
        {
            return;
        }
        foreach (var node in choices)
        {
            if (node is not JsonObject choice)
            {
                continue;
            }
            var index = (int?)choice["index"] ?? 0;
            if (!_choices.TryGetValue(index, out var state))
            {
                _choices[index] = state = new ChoiceState();
            }
            if ((string?)choice["finish_reason"] is { } finish)
            {
                state.FinishReason = finish;
            }
            if (choice["delta"] is not JsonObject delta)
            {
                continue;
            }
            state.Role ??= (string?)delta["role"];
            if ((string?)delta["content"] is { } content)
            {
                state.Content.Append(content);
            }
            if ((string?)delta["refusal"] is { } refusal)
            {
                (state.Refusal ??= new StringBuilder()).Append(refusal);
            }
            if (delta["tool_calls"] is JsonArray calls)
            {
                foreach (var callNode in calls)
                {
                    if (callNode is not JsonObject call)
                    {
                        continue;
                    }
                    var callIndex = (int?)call["index"] ?? 0;
                    if (!state.ToolCalls.TryGetValue(callIndex, out var tool))
                    {
                        state.ToolCalls[callIndex] = tool = new ToolCallState();
                    }
                    tool.Id ??= (string?)call["id"];
                    tool.Type ??= (string?)call["type"];
                    if (call["function"] is JsonObject function)
                    {
                        tool.Name ??= (string?)function["name"];
                        tool.Arguments.Append((string?)function["arguments"]);
                    }
                }
            }
        }
    }

    public JsonObject ToCompletion()
    {
        var choices = new JsonArray();
        foreach (var (index, state) in _choices)
        {
            var message = new JsonObject
            {
                ["role"] = state.Role ?? "assistant",
                ["content"] = state.ToolCalls.Count > 0 && state.Content.Length == 0 ? null : state.Content.ToString(),
            };
            if (state.Refusal is not null)
            {
                message["refusal"] = state.Refusal.ToString();
            }
            if (state.ToolCalls.Count > 0)
            {
                var calls = new JsonArray();
                foreach (var (_, tool) in state.ToolCalls)
                {
                    calls.Add(new JsonObject
                    {
                        ["id"] = tool.Id,
                        ["type"] = tool.Type ?? "function",
                        ["function"] = new JsonObject { ["name"] = tool.Name, ["arguments"] = tool.Arguments.ToString() },
                    });
                }
                message["tool_calls"] = calls;
            }
            choices.Add(new JsonObject { ["index"] = index, ["message"] = message, ["finish_reason"] = state.FinishReason });
        }
        var completion = new JsonObject
        {
            ["id"] = _id,
            ["object"] = "chat.completion",
            ["created"] = _created,
            ["model"] = _model,
            ["choices"] = choices,
            ["usage"] = _usage,
        };
        if (_systemFingerprint is not null)
        {
            completion["system_fingerprint"] = _systemFingerprint;
        }
        return completion;
    }

    private sealed class ChoiceState
    {
        public string? Role;
        public string? FinishReason;
        public readonly StringBuilder Content = new();
        public StringBuilder? Refusal;
        public readonly SortedDictionary<int, ToolCallState> ToolCalls = [];
    }

    private sealed class ToolCallState
    {
        public string? Id;
        public string? Type;
        public string? Name;
        public readonly StringBuilder Arguments = new();
    }
}
