using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.ChatCompletions;

/// <summary>The Api end to end over HTTP, against real Redis and Postgres and the fake upstream.</summary>
public sealed class ChatCompletionsServiceTests(GatewayFixture fx) : IClassFixture<GatewayFixture>
{
    private static readonly object[] Hi = [new { role = "user", content = "hi there" }];

    [Fact]
    public async Task Health_keeps_the_original_shape()
    {
        using var response = await fx.Gateway.Client.GetAsync("/health", TestContext.Current.CancellationToken);
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.True(DateTimeOffset.TryParse(json.GetProperty("time").GetString(), out var time));
        Assert.InRange(time, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
    }

    [Fact]
    public async Task Chat_completion_through_the_openai_compatible_route()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        Assert.Equal("Echo: hi there", json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(3, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // The upstream saw the route's upstream model, not the alias.
        var upstream = await LastUpstreamRequestAsync();
        Assert.Equal("openai/gpt-4o-mini", upstream.GetProperty("body").GetProperty("model").GetString());
    }

    [Fact]
    public async Task Every_response_carries_the_trace_id_and_security_headers()
    {
        using var ok = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi }));
        using var unauthorized = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi }, key: null));
        foreach (var response in new[] { ok, unauthorized })
        {
            var traceId = Assert.Single(response.Headers.GetValues("x-trace-id"));
            Assert.Matches("^[0-9a-f]{32}$", traceId);
            Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
            Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
        }
    }

    [Fact]
    public async Task A_client_traceparent_reaches_the_upstream_and_comes_back_in_x_trace_id()
    {
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var request = GatewayApp.Chat(new { model = "chat-default", messages = Hi });
        request.Headers.Add("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
        // A client of our own that does not stamp the test process's trace context over ours.
        using var client = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = fx.Gateway.Client.BaseAddress };
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(traceId, Assert.Single(response.Headers.GetValues("x-trace-id")));
        var upstream = await LastUpstreamRequestAsync();
        Assert.Contains(traceId, upstream.GetProperty("headers").GetProperty("traceparent").GetString());
    }

    [Fact]
    public async Task Streaming_relays_chunks_and_ends_with_done()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi, stream = true }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var data = await GatewayApp.ReadSseDataAsync(response);
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data.SkipLast(1).Select(d => JsonDocument.Parse(d).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        var text = string.Concat(chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray())
            .Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : ""));
        Assert.Equal("Echo: hi there", text);
        // The client did not ask for usage, so the usage chunk the gateway requested upstream is not relayed...
        Assert.DoesNotContain(chunks, c => c.GetProperty("choices").GetArrayLength() == 0);
        // ...but it was requested upstream so that usage is known.
        var upstream = await LastUpstreamRequestAsync();
        Assert.True(upstream.GetProperty("body").GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
    }

    [Fact]
    public async Task Streaming_returns_the_usage_chunk_when_the_client_asks()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new
        {
            model = "chat-default", messages = Hi, stream = true, stream_options = new { include_usage = true },
        }));
        var data = await GatewayApp.ReadSseDataAsync(response);
        var usageChunk = JsonDocument.Parse(data[^2]).RootElement;
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(3, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streams_are_flushed_chunk_by_chunk_not_buffered()
    {
        // The fake waits 300 ms between chunks: the first chunk must reach us long before the last.
        var sw = Stopwatch.StartNew();
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "fault-slow-chunks@300", messages = Hi, stream = true }));
        await using var stream = await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
        using var reader = new StreamReader(stream);
        string? line;
        while ((line = await reader.ReadLineAsync(TestContext.Current.CancellationToken)) is not null && !line.StartsWith("data: ", StringComparison.Ordinal))
        {
        }
        var firstChunkAt = sw.Elapsed;
        await reader.ReadToEndAsync(TestContext.Current.CancellationToken);
        var endAt = sw.Elapsed;
        Assert.True(endAt - firstChunkAt > TimeSpan.FromMilliseconds(600), $"first chunk at {firstChunkAt}, end at {endAt}");
    }

    [Fact]
    public async Task A_stream_cut_upstream_ends_with_an_error_event_and_no_done()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "fault-cut-stream", messages = Hi, stream = true }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var data = await GatewayApp.ReadSseDataAsync(response);
        Assert.DoesNotContain("[DONE]", data);
        var last = JsonDocument.Parse(data[^1]).RootElement;
        Assert.Equal("upstream_stream_error", last.GetProperty("error").GetProperty("code").GetString());
        Assert.True(data.Count >= 2, "the chunks before the cut were relayed");
    }

    [Theory]
    [InlineData("fault-500", 502, "api_error")]
    [InlineData("fault-429", 429, "rate_limit_error")]
    [InlineData("fault-400", 400, "invalid_request_error")]
    [InlineData("fault-connection-reset", 502, "api_error")]
    public async Task Upstream_errors_come_back_in_the_openai_envelope(string model, int status, string type)
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model, messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(type, json.GetProperty("error").GetProperty("type").GetString());
        Assert.True(json.GetProperty("error").GetProperty("message").GetString()!.Length > 0);
    }

    [Fact]
    public async Task A_missing_or_wrong_key_is_401_in_the_openai_envelope()
    {
        using var none = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi }, key: null));
        using var wrong = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Hi }, key: "sk-nope-123"));
        foreach (var response in new[] { none, wrong })
        {
            var json = await GatewayApp.ReadJsonAsync(response);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("invalid_api_key", json.GetProperty("error").GetProperty("code").GetString());
        }
    }

    [Theory]
    [InlineData("{not json", 400, "invalid_json", null)]
    [InlineData("[1,2]", 400, "invalid_json", null)]
    [InlineData("{\"model\":\"chat-default\"}", 400, "missing_required_parameter", "messages")]
    [InlineData("{\"model\":\"chat-default\",\"messages\":[]}", 400, "empty_array", "messages")]
    [InlineData("{\"model\":42,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "invalid_type", "model")]
    [InlineData("{\"model\":\"chat-default\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "invalid_value", "messages[0].role")]
    [InlineData("{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}", 400, "invalid_value", "max_tokens")]
    [InlineData("{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":1e400}", 400, "invalid_value", "temperature")]
    [InlineData("{\"model\":\"no-such-model\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "model_not_found", "model")]
    [InlineData("{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tenant\":\"someone-else\"}", 403, "tenant_mismatch", "tenant")]
    public async Task Bad_input_gets_a_precise_error_and_never_reaches_the_upstream(string body, int status, string code, string? param)
    {
        var before = await UpstreamRequestCountAsync();
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(body));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(code, json.GetProperty("error").GetProperty("code").GetString());
        if (param is not null)
        {
            Assert.Equal(param, json.GetProperty("error").GetProperty("param").GetString());
        }
        Assert.Equal(before, await UpstreamRequestCountAsync());
    }

    [Fact]
    public async Task Deeply_nested_json_is_refused()
    {
        var nested = new string('[', 500) + new string(']', 500);
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat($"{{\"model\":\"chat-default\",\"messages\":{nested}}}"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task A_body_over_one_mebibyte_is_413()
    {
        var big = new string('a', 1024 * 1024 + 10);
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = big } } }));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", json.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Models_lists_the_tenants_aliases_in_openai_list_shape()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new("Bearer", GatewayFixture.DevKey);
        using var response = await fx.Gateway.SendAsync(request);
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal("list", json.GetProperty("object").GetString());
        var ids = json.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains("chat-default", ids);
        Assert.Contains("chat-anthropic", ids);
        Assert.Contains("chat-local", ids);
    }

    private async Task<JsonElement> LastUpstreamRequestAsync()
    {
        var all = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", TestContext.Current.CancellationToken);
        return all[all.GetArrayLength() - 1];
    }

    private async Task<int> UpstreamRequestCountAsync()
    {
        var stats = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", TestContext.Current.CancellationToken);
        return stats.GetProperty("requests").GetInt32();
    }
}
