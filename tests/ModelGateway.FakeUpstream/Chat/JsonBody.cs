using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// Non-streamed JSON bodies written with <see cref="Utf8JsonWriter"/> straight into the response pipe:
/// no DTOs, no reflection, and large texts flushed as they are written.
/// </summary>
internal static class JsonBody
{
    private const int FlushThreshold = 64 * 1024;

    /// <summary>
    /// Providers escape only what JSON requires (<c>\"</c>, not <c>\u0022</c>; see the tool-call argument
    /// fragments in openai_chat_stream_tool_call.sse), so every writer uses the relaxed encoder.
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Utf8JsonWriter Start(HttpContext context, int status, string contentType = "application/json")
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = contentType;
        return new Utf8JsonWriter(context.Response.BodyWriter, WriterOptions);
    }

    public static async Task EndAsync(HttpContext context, Utf8JsonWriter json)
    {
        await json.FlushAsync(context.RequestAborted);
        await json.DisposeAsync();
        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    /// <summary>Writes the chunks as one JSON string value, segment by segment.</summary>
    public static async ValueTask WriteTextAsync(HttpContext context, Utf8JsonWriter json, IReadOnlyList<string> chunks)
    {
        if (chunks.Count == 0)
        {
            json.WriteStringValue(""u8);
            return;
        }
        for (var i = 0; i < chunks.Count; i++)
        {
            json.WriteStringValueSegment(chunks[i], i == chunks.Count - 1);
            if (json.BytesPending > FlushThreshold)
            {
                json.Flush();
                await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
            }
        }
    }
}
