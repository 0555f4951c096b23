using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelGateway.Realtime.Tests.Support;

/// <summary>
/// An in-process stand-in for the Api: <c>GET /v1/models</c> accepts one key, <c>POST /v1/chat/completions</c>
/// streams OpenAI SSE echoing the last user message. Magic models make behaviour deterministic:
/// <c>slow</c> waits between chunks, <c>error</c> answers a 400 envelope.
/// </summary>
public sealed class ApiStub : IAsyncDisposable
{
    public const string ValidKey = "sk-test-realtime";

    private readonly WebApplication _app;

    private ApiStub(WebApplication app) => _app = app;

    public string BaseUrl { get; private set; } = "";

    /// <summary>The chat requests received: body and the traceparent header.</summary>
    public ConcurrentQueue<(JsonObject Body, string? TraceParent)> ChatRequests { get; } = new();

    public static async Task<ApiStub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var stub = new ApiStub(app);
        app.MapGet("/v1/models", (HttpContext c) => Authorized(c)
            ? Results.Text("""{"object":"list","data":[{"id":"chat-default","object":"model"}]}""", "application/json")
            : Unauthorized());
        app.MapPost("/v1/chat/completions", stub.ChatAsync);
        await app.StartAsync();
        stub.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return stub;
    }

    private static bool Authorized(HttpContext c) => c.Request.Headers.Authorization.ToString() == "Bearer " + ValidKey;

    private static IResult Unauthorized() => Results.Text(
        """{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}""",
        "application/json", statusCode: 401);

    private async Task ChatAsync(HttpContext context)
    {
        if (!Authorized(context))
        {
            await Unauthorized().ExecuteAsync(context);
            return;
        }
        var body = (JsonObject)(await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted))!;
        ChatRequests.Enqueue((body, context.Request.Headers["traceparent"].FirstOrDefault()));
        var model = (string?)body["model"] ?? "chat-default";
        if (model == "error")
        {
            await Results.Text("""{"error":{"message":"The model 'error' does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}""",
                "application/json", statusCode: 400).ExecuteAsync(context);
            return;
        }
        var messages = body["messages"]!.AsArray();
        var last = (string?)messages[^1]!["content"] ?? "";
        var content = "echo: " + last;
        var pieces = Split(content, 8);
        var delay = model == "slow" ? TimeSpan.FromMilliseconds(150) : TimeSpan.Zero;

        context.Response.ContentType = "text/event-stream";
        const string id = "chatcmpl-stub";
        async Task SendAsync(JsonObject chunk)
        {
            await context.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
        JsonObject Chunk(JsonObject delta, string? finish) => new()
        {
            ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
        };
        await SendAsync(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
        foreach (var piece in pieces)
        {
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, context.RequestAborted);
            }
            await SendAsync(Chunk(new JsonObject { ["content"] = piece }, null));
        }
        await SendAsync(Chunk([], "stop"));
        if (body["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
        {
            await SendAsync(new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = model,
                ["choices"] = new JsonArray(),
                ["usage"] = new JsonObject { ["prompt_tokens"] = last.Length / 4 + 1, ["completion_tokens"] = content.Length / 4 + 1, ["total_tokens"] = last.Length / 4 + content.Length / 4 + 2 },
            });
        }
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
    }

    private static List<string> Split(string text, int parts)
    {
        var size = Math.Max(1, (text.Length + parts - 1) / parts);
        var result = new List<string>();
        for (var i = 0; i < text.Length; i += size)
        {
            result.Add(text.Substring(i, Math.Min(size, text.Length - i)));
        }
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
