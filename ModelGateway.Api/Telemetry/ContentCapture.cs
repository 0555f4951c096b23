using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Telemetry;

/// <summary>
/// Opt-in content capture (semconv v1.37 "gen-ai-events"): the chat history and the answer as the
/// <c>gen_ai.client.inference.operation.details</c> event on the attempt span, with <c>gen_ai.system_instructions</c>,
/// <c>gen_ai.input.messages</c> and <c>gen_ai.output.messages</c> in the conventions' JSON shape (role + typed parts).
/// Only message content is captured: never headers, keys or the raw request. Binary parts (images, audio) keep their
/// type but not their data, so a capture cannot balloon with base64.
/// </summary>
internal static class ContentCapture
{
    public const string EventName = "gen_ai.client.inference.operation.details";
    private const string InputProperty = "model_gateway.captured_input";

    /// <summary>Remembers the request's messages on the attempt span, to be emitted with the answer when it ends.</summary>
    public static void RememberInput(Activity activity, JsonArray messages)
    {
        activity.SetCustomProperty(InputProperty, Input(messages));
    }

    /// <summary>True when the span remembered its input, i.e. content capture is on and the span is recorded.</summary>
    public static bool IsCapturing(Activity? activity) => activity?.GetCustomProperty(InputProperty) is not null;

    /// <summary>Adds the event: the remembered input, and the output when there is one (none for a failed attempt).</summary>
    public static void Emit(Activity activity, string? outputMessages)
    {
        if (activity.GetCustomProperty(InputProperty) is not CapturedInput input)
        {
            return;
        }
        var tags = new ActivityTagsCollection { ["gen_ai.input.messages"] = input.Messages };
        if (input.System != "[]")
        {
            tags["gen_ai.system_instructions"] = input.System;
        }
        if (outputMessages is not null)
        {
            tags["gen_ai.output.messages"] = outputMessages;
        }
        activity.AddEvent(new ActivityEvent(EventName, tags: tags));
    }

    /// <summary>The output of a non-streamed completion: each choice's message as an assistant message.</summary>
    public static string Output(JsonObject completion) => Write(w =>
    {
        w.WriteStartArray();
        if (completion["choices"] is JsonArray choices)
        {
            foreach (var choice in choices)
            {
                if (choice?["message"] is not JsonObject message)
                {
                    continue;
                }
                w.WriteStartObject();
                w.WriteString("role", "assistant");
                WriteParts(w, message);
                if (choice["finish_reason"] is JsonValue finish && finish.GetValueKind() == JsonValueKind.String)
                {
                    w.WriteString("finish_reason", finish.GetValue<string>());
                }
                w.WriteEndObject();
            }
        }
        w.WriteEndArray();
    });

    /// <summary>The output of a stream: the text assembled from its content deltas.</summary>
    public static string Output(string text, string? finishReason) => Write(w =>
    {
        w.WriteStartArray();
        w.WriteStartObject();
        w.WriteString("role", "assistant");
        w.WriteStartArray("parts");
        w.WriteStartObject();
        w.WriteString("type", "text");
        w.WriteString("content", text);
        w.WriteEndObject();
        w.WriteEndArray();
        if (finishReason is not null)
        {
            w.WriteString("finish_reason", finishReason);
        }
        w.WriteEndObject();
        w.WriteEndArray();
    });

    private sealed record CapturedInput(string System, string Messages);

    private static CapturedInput Input(JsonArray messages)
    {
        var system = Write(w =>
        {
            w.WriteStartArray();
            foreach (var message in messages)
            {
                if (message is JsonObject m && Role(m) is "system" or "developer")
                {
                    WriteContentParts(w, m["content"]);
                }
            }
            w.WriteEndArray();
        });
        var history = Write(w =>
        {
            w.WriteStartArray();
            foreach (var message in messages)
            {
                if (message is not JsonObject m || Role(m) is "system" or "developer")
                {
                    continue;
                }
                w.WriteStartObject();
                w.WriteString("role", Role(m));
                WriteParts(w, m);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
        return new CapturedInput(system, history);
    }

    private static string Role(JsonObject message) =>
        message["role"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : "user";

    private static void WriteParts(Utf8JsonWriter w, JsonObject message)
    {
        w.WriteStartArray("parts");
        if (Role(message) == "tool")
        {
            w.WriteStartObject();
            w.WriteString("type", "tool_call_response");
            WriteStringIfPresent(w, "id", message["tool_call_id"]);
            w.WritePropertyName("response");
            WriteNode(w, message["content"]);
            w.WriteEndObject();
        }
        else
        {
            WriteContentParts(w, message["content"]);
        }
        if (message["tool_calls"] is JsonArray calls)
        {
            foreach (var call in calls)
            {
                w.WriteStartObject();
                w.WriteString("type", "tool_call");
                WriteStringIfPresent(w, "id", call?["id"]);
                WriteStringIfPresent(w, "name", call?["function"]?["name"]);
                w.WritePropertyName("arguments");
                WriteNode(w, call?["function"]?["arguments"]);
                w.WriteEndObject();
            }
        }
        w.WriteEndArray();
    }

    private static void WriteContentParts(Utf8JsonWriter w, JsonNode? content)
    {
        if (content is JsonValue text && text.GetValueKind() == JsonValueKind.String)
        {
            WriteText(w, text.GetValue<string>());
        }
        else if (content is JsonArray parts)
        {
            foreach (var part in parts)
            {
                if (part?["type"] is not JsonValue type || type.GetValueKind() != JsonValueKind.String)
                {
                    continue;
                }
                if (type.GetValue<string>() == "text" && part["text"] is JsonValue t && t.GetValueKind() == JsonValueKind.String)
                {
                    WriteText(w, t.GetValue<string>());
                }
                else
                {
                    // The part's kind without its payload (an image or audio clip is not telemetry).
                    w.WriteStartObject();
                    w.WriteString("type", type.GetValue<string>());
                    w.WriteEndObject();
                }
            }
        }
    }

    private static void WriteText(Utf8JsonWriter w, string text)
    {
        w.WriteStartObject();
        w.WriteString("type", "text");
        w.WriteString("content", text);
        w.WriteEndObject();
    }

    private static void WriteStringIfPresent(Utf8JsonWriter w, string name, JsonNode? value)
    {
        if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            w.WriteString(name, v.GetValue<string>());
        }
    }

    private static void WriteNode(Utf8JsonWriter w, JsonNode? node)
    {
        if (node is null)
        {
            w.WriteNullValue();
        }
        else
        {
            node.WriteTo(w);
        }
    }

    private static string Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
