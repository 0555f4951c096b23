using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;
using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Control;

/// <summary>
/// Test-only endpoints under <c>/_fake</c> (docs/fake-upstream.md): never part of a provider protocol.
/// </summary>
internal static class ControlApi
{
    public static IEndpointRouteBuilder MapControlApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/_fake");
        group.MapGet("/requests", GetRequestsAsync);
        group.MapGet("/stats", GetStatsAsync);
        group.MapPost("/reset", Reset);
        return app;
    }

    private static async Task GetRequestsAsync(HttpContext context)
    {
        var requests = context.RequestServices.GetRequiredService<RequestLog>().Snapshot();
        var json = JsonBody.Start(context, StatusCodes.Status200OK);
        json.WriteStartArray();
        foreach (var request in requests)
        {
            json.WriteStartObject();
            json.WriteString("protocol", request.Protocol);
            json.WriteString("http_version", request.HttpVersion);
            json.WriteString("path", request.Path);
            json.WriteString("received_at", request.ReceivedAt);
            if (request.CompletedAt is { } completedAt)
            {
                json.WriteString("completed_at", completedAt);
            }
            else
            {
                json.WriteNull("completed_at");
            }
            json.WriteBoolean("aborted", request.Aborted);
            json.WriteStartObject("headers");
            foreach (var (name, value) in request.Headers)
            {
                json.WriteString(name, value);
            }
            json.WriteEndObject();
            json.WritePropertyName("body");
            if (request.BodyIsJson)
            {
                // Validated when it was parsed on arrival.
                json.WriteRawValue(request.Body, skipInputValidation: true);
            }
            else if (request.Body.Length == 0)
            {
                json.WriteNullValue();
            }
            else
            {
                json.WriteStringValue(System.Text.Encoding.UTF8.GetString(request.Body));
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        await JsonBody.EndAsync(context, json);
    }

    private static async Task GetStatsAsync(HttpContext context)
    {
        var stats = context.RequestServices.GetRequiredService<UsageStats>();
        long requests = 0, input = 0, output = 0;
        for (var i = 0; i < UpstreamProtocolNames.Count; i++)
        {
            var (r, n, o) = stats.Read((UpstreamProtocol)i);
            requests += r;
            input += n;
            output += o;
        }

        var json = JsonBody.Start(context, StatusCodes.Status200OK);
        json.WriteStartObject();
        WriteTotals(json, requests, input, output);
        json.WriteStartObject("by_protocol");
        for (var i = 0; i < UpstreamProtocolNames.Count; i++)
        {
            var protocol = (UpstreamProtocol)i;
            var (r, n, o) = stats.Read(protocol);
            json.WriteStartObject(protocol.Name());
            WriteTotals(json, r, n, o);
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteEndObject();
        await JsonBody.EndAsync(context, json);
    }

    private static IResult Reset(RequestLog log, UsageStats stats, FaultCounters counters)
    {
        log.Clear();
        stats.Reset();
        counters.Reset();
        return TypedResults.NoContent();
    }

    private static void WriteTotals(Utf8JsonWriter json, long requests, long input, long output)
    {
        json.WriteNumber("requests", requests);
        json.WriteNumber("input_tokens", input);
        json.WriteNumber("output_tokens", output);
    }
}
