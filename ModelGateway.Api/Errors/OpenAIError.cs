using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Errors;

/// <summary>
/// An error in OpenAI's envelope <c>{"error":{"message","type","param","code"}}</c>, which every
/// <c>/v1</c> endpoint speaks because client SDKs parse it to raise typed errors
/// (https://platform.openai.com/docs/guides/error-codes).
/// </summary>
internal sealed record OpenAIError(int StatusCode, string Message, string Type, string? Param = null, string? Code = null)
{
    public static OpenAIError InvalidRequest(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    public static OpenAIError Unauthorized(string message) =>
        new(StatusCodes.Status401Unauthorized, message, "invalid_request_error", null, "invalid_api_key");

    public static OpenAIError NotFound(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status404NotFound, message, "invalid_request_error", param, code);

    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = Message,
            ["type"] = Type,
            ["param"] = Param,
            ["code"] = Code,
        },
    };

    public byte[] ToUtf8Bytes()
    {
        using var buffer = new MemoryStream(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }
        return buffer.ToArray();
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteString("message", Message);
        writer.WriteString("type", Type);
        WriteNullable(writer, "param", Param);
        WriteNullable(writer, "code", Code);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }

    /// <summary>Writes the envelope as the whole HTTP response.</summary>
    public async Task WriteResponseAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCode;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(ToUtf8Bytes(), context.RequestAborted);
    }

    /// <summary>An <see cref="IResult"/> that writes the envelope with its status code.</summary>
    public IResult ToResult() => new OpenAIErrorResult(this);

    private sealed class OpenAIErrorResult(OpenAIError error) : IResult, IStatusCodeHttpResult
    {
        public int? StatusCode => error.StatusCode;

        public Task ExecuteAsync(HttpContext httpContext) => error.WriteResponseAsync(httpContext);
    }
}
