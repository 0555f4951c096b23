using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>Where a client's structured-output request came from; decides the error <c>param</c> and what providers are sent.</summary>
internal enum ResponseSchemaSource
{
    /// <summary>OpenAI <c>response_format: {"type":"json_schema","json_schema":{name,schema,strict}}</c>.</summary>
    JsonSchema,

    /// <summary>OpenAI <c>response_format: {"type":"json_object"}</c>: any JSON object, no schema.</summary>
    JsonObject,

    /// <summary>The original gateway's extension: a top-level <c>response_schema</c> (a JSON Schema).</summary>
    Extension,
}

/// <summary>
/// What the client asked the output to be (https://platform.openai.com/docs/guides/structured-outputs, and the original
/// gateway's <c>response_schema</c>/<c>coerce</c> fields). <see cref="Schema"/> is null for <c>json_object</c>.
/// </summary>
internal sealed record ResponseSchema(ResponseSchemaSource Source, string Name, JsonObject? Schema, bool Strict, bool Coerce)
{
    /// <summary>The name providers get when the client gave none (the extension has no name field).</summary>
    public const string DefaultName = "response";

    /// <summary>The request field an error about this schema points at.</summary>
    public string Param => Source == ResponseSchemaSource.Extension ? "response_schema" : "response_format";

    /// <summary>
    /// Reads the structured-output fields. Returns false with a 400 when they are malformed; true with a null
    /// <paramref name="schema"/> when the client asked for none (no field, or <c>response_format.type</c> <c>text</c>).
    /// The schema itself is checked when it is compiled (<see cref="SchemaCache"/>).
    /// </summary>
    public static bool TryRead(ChatRequest request, out ResponseSchema? schema, out OpenAIError? error)
    {
        schema = null;
        error = null;
        var body = request.Body;
        var coerce = false;
        if (body["coerce"] is { } coerceNode)
        {
            if (coerceNode.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
            {
                error = OpenAIError.InvalidRequest("'coerce' must be a boolean.", "coerce", "invalid_type");
                return false;
            }
            coerce = coerceNode.GetValue<bool>();
        }

        var extension = body["response_schema"];
        var format = request.ResponseFormat;
        var formatType = format?["type"]?.GetValue<string>();
        if (extension is not null)
        {
            if (extension is not JsonObject extensionSchema)
            {
                error = OpenAIError.InvalidRequest("'response_schema' must be a JSON Schema object.", "response_schema", "invalid_type");
                return false;
            }
            if (formatType is "json_schema" or "json_object")
            {
                error = OpenAIError.InvalidRequest(
                    $"Give either 'response_format' of type '{formatType}' or 'response_schema', not both.", "response_schema", "invalid_value");
                return false;
            }
            schema = new ResponseSchema(ResponseSchemaSource.Extension, DefaultName, extensionSchema, Strict: false, coerce);
            return true;
        }

        switch (formatType)
        {
            case "json_object":
                schema = new ResponseSchema(ResponseSchemaSource.JsonObject, DefaultName, null, Strict: false, coerce);
                return true;
            case "json_schema":
                break;
            default:
                return true;
        }

        if (format!["json_schema"] is not JsonObject jsonSchema)
        {
            error = OpenAIError.InvalidRequest(
                "'response_format.json_schema' must be an object with 'name' and 'schema' when 'response_format.type' is 'json_schema'.",
                "response_format.json_schema", format.ContainsKey("json_schema") ? "invalid_type" : "missing_required_parameter");
            return false;
        }
        if (jsonSchema["name"] is not JsonValue nameValue || nameValue.GetValueKind() != JsonValueKind.String)
        {
            error = OpenAIError.InvalidRequest("Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name", "missing_required_parameter");
            return false;
        }
        var name = nameValue.GetValue<string>();
        if (!IsValidName(name))
        {
            // OpenAI: "a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64".
            error = OpenAIError.InvalidRequest(
                $"Invalid 'response_format.json_schema.name': '{name}'. Use 1 to 64 characters a-z, A-Z, 0-9, '_' or '-'.",
                "response_format.json_schema.name", "invalid_value");
            return false;
        }
        var strict = false;
        if (jsonSchema["strict"] is { } strictNode)
        {
            if (strictNode.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
            {
                error = OpenAIError.InvalidRequest("'response_format.json_schema.strict' must be a boolean.",
                    "response_format.json_schema.strict", "invalid_type");
                return false;
            }
            strict = strictNode.GetValueKind() == JsonValueKind.True;
        }
        switch (jsonSchema["schema"])
        {
            case null:
                // OpenAI makes 'schema' optional; without one the output need only be JSON.
                schema = new ResponseSchema(ResponseSchemaSource.JsonSchema, name, null, strict, coerce);
                return true;
            case JsonObject s:
                schema = new ResponseSchema(ResponseSchemaSource.JsonSchema, name, s, strict, coerce);
                return true;
            default:
                error = OpenAIError.InvalidRequest("'response_format.json_schema.schema' must be a JSON Schema object.",
                    "response_format.json_schema.schema", "invalid_type");
                return false;
        }
    }

    /// <summary>For adapters: the schema when the request asks for one, ignoring malformed fields (refused before any adapter runs).</summary>
    public static ResponseSchema? Read(ChatRequest request) => TryRead(request, out var schema, out _) ? schema : null;

    private static bool IsValidName(string name)
    {
        if (name.Length is 0 or > 64)
        {
            return false;
        }
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                return false;
            }
        }
        return true;
    }
}
