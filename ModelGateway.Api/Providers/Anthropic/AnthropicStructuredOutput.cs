using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.StructuredOutput;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>
/// Structured output on Anthropic, which has no <c>response_format</c>: the schema becomes the <c>input_schema</c> of one tool
/// the model is forced to call (<c>tool_choice {"type":"tool","name"}</c>; tool use guide, "JSON mode"), and that tool's
/// input comes back as the message content, JSON text, with finish_reason <c>stop</c>. <c>input_schema</c> must describe an
/// object, so a schema for anything else (an array, a string) is wrapped as the required property <see cref="WrapProperty"/>
/// and unwrapped on the way back; its <c>$defs</c>/<c>definitions</c> move to the wrapper so that <c>#/$defs/…</c> still resolves.
/// </summary>
internal sealed class AnthropicStructuredOutput
{
    public const string WrapProperty = "value";

    private AnthropicStructuredOutput(string toolName, JsonObject inputSchema, bool wrapped)
    {
        ToolName = toolName;
        InputSchema = inputSchema;
        Wrapped = wrapped;
    }

    /// <summary>The forced tool's name: the client's json_schema name (same character rules as Anthropic's), else "response".</summary>
    public string ToolName { get; }

    public JsonObject InputSchema { get; }

    public bool Wrapped { get; }

    /// <summary>The constraint for <paramref name="request"/>, or null when it asks for no structured output.</summary>
    public static AnthropicStructuredOutput? For(ChatRequest request)
    {
        if (ResponseSchema.Read(request) is not { } schema)
        {
            return null;
        }
        if (schema.Schema is not { } source)
        {
            // json_object (or json_schema without a schema): any object.
            return new AnthropicStructuredOutput(schema.Name, new JsonObject { ["type"] = "object" }, wrapped: false);
        }
        if (IsObjectSchema(source))
        {
            return new AnthropicStructuredOutput(schema.Name, source, wrapped: false);
        }
        var inner = (JsonObject)source.DeepClone();
        var wrapper = new JsonObject { ["type"] = "object" };
        foreach (var name in (ReadOnlySpan<string>)["$schema", "$defs", "definitions"])
        {
            if (inner[name] is { } moved)
            {
                inner.Remove(name);
                wrapper[name] = moved;
            }
        }
        wrapper["properties"] = new JsonObject { [WrapProperty] = inner };
        wrapper["required"] = new JsonArray(WrapProperty);
        return new AnthropicStructuredOutput(schema.Name, wrapper, wrapped: true);
    }

    public string Description => "Respond by calling this tool with the answer as its input; the input must match the schema.";

    /// <summary>The message content for the tool's input: its JSON text, unwrapped when the schema was wrapped.</summary>
    public string ContentOf(JsonNode? input)
    {
        if (Wrapped && input is JsonObject o && o.ContainsKey(WrapProperty))
        {
            return o[WrapProperty]?.ToJsonString() ?? "null";
        }
        return input?.ToJsonString() ?? "{}";
    }

    /// <summary>
    /// The same from a non-streaming answer: <paramref name="input"/> is where the tool's input lies in <paramref name="body"/>
    /// (null when absent or JSON null), and the content is its JSON text as Anthropic wrote it.
    /// </summary>
    public string ContentOf(ReadOnlySpan<byte> body, Range? input)
    {
        if (input is not { } range)
        {
            return "{}";
        }
        var value = body[range];
        if (Wrapped)
        {
            var reader = new Utf8JsonReader(value);
            reader.Read();
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isWrapper = reader.ValueTextEquals(WrapProperty);
                    reader.Read();
                    if (isWrapper)
                    {
                        return Encoding.UTF8.GetString(value[AnthropicResponse.ValueRange(ref reader)]);
                    }
                    reader.Skip();
                }
            }
        }
        return Encoding.UTF8.GetString(value);
    }

    private static bool IsObjectSchema(JsonObject schema) =>
        schema["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String && t.GetValue<string>() == "object";
}
