using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelGateway.Policy.Tests.Support;

/// <summary>
/// A local HTTP server that answers like OPA's REST API (https://www.openpolicyagent.org/docs/rest-api):
/// each test scripts the next answers of <c>POST /v1/data/...</c> and <c>GET /health</c>; requests are recorded.
/// </summary>
public sealed class FakeOpaServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<Reply> _dataReplies = new();

    public sealed record Reply(HttpStatusCode Status, string Body, TimeSpan Delay = default);

    public sealed record Recorded(string Path, JsonNode? Body);

    // Documented answers (REST API reference: "Get a Document (with Input)", "Errors", "Health API").
    public static Reply Result(string resultJson, string? decisionId = null)
        => new(HttpStatusCode.OK, decisionId is null ? $$"""{"result":{{resultJson}}}""" : $$"""{"decision_id":"{{decisionId}}","result":{{resultJson}}}""");

    public static readonly Reply Undefined = new(HttpStatusCode.OK, "{}");

    public static readonly Reply BadRequest = new(HttpStatusCode.BadRequest, """
        {"code":"invalid_parameter","message":"error(s) occurred while parsing input","errors":[{"code":"rego_parse_error","message":"unexpected eof token"}]}
        """);

    public static readonly Reply ServerError = new(HttpStatusCode.InternalServerError, """
        {"code":"internal_error","message":"eval_conflict_error: complete rules must not produce multiple outputs"}
        """);

    public ConcurrentQueue<Recorded> Requests { get; } = new();

    /// <summary>The answer to every data call once the script is exhausted.</summary>
    public Reply DefaultReply { get; set; } = Undefined;

    public Reply HealthReply { get; set; } = new(HttpStatusCode.OK, "{}");

    public Uri Url { get; }

    private FakeOpaServer(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public void Enqueue(params Reply[] replies)
    {
        foreach (var reply in replies)
        {
            _dataReplies.Enqueue(reply);
        }
    }

    public static async Task<FakeOpaServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        FakeOpaServer? server = null;
        app.MapPost("/v1/data/{**path}", async (HttpContext context, string path) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body);
            server!.Requests.Enqueue(new Recorded(path, body));
            var reply = server._dataReplies.TryDequeue(out var next) ? next : server.DefaultReply;
            await WriteAsync(context, reply);
        });
        app.MapGet("/health", (HttpContext context) => WriteAsync(context, server!.HealthReply));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server = new FakeOpaServer(app, new Uri(address));
        return server;
    }

    private static async Task WriteAsync(HttpContext context, Reply reply)
    {
        if (reply.Delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(reply.Delay, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        context.Response.StatusCode = (int)reply.Status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(reply.Body, Encoding.UTF8);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
