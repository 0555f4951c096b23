using System.Text.Json;
using static ModelGateway.Api.Tests.FakeUpstream.FakeUpstreamApp;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>The /_fake control endpoints and the service-default health endpoints.</summary>
public sealed class ControlTests(FakeUpstreamApp app) : IClassFixture<FakeUpstreamApp>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Requests_are_recorded_newest_last_with_protocol_path_headers_and_body()
    {
        await ResetAsync();
        await app.PostJsonAsync(OpenAIPath, """{"model":"m1","messages":[{"role":"user","content":"first"}]}""");
        await app.PostJsonAsync(AnthropicPath, """{"model":"m2","max_tokens":5,"messages":[{"role":"user","content":"second"}]}""");
        await app.PostJsonAsync(LlamaCppPath, """{"messages":[{"role":"user","content":"third"}]}""");

        var requests = await GetAsync("/_fake/requests");

        Assert.Equal(3, requests.GetArrayLength());
        Assert.Equal(["openai", "anthropic", "llamacpp"], requests.EnumerateArray().Select(r => r.GetProperty("protocol").GetString()));
        Assert.Equal([OpenAIPath, AnthropicPath, LlamaCppPath], requests.EnumerateArray().Select(r => r.GetProperty("path").GetString()));
        var anthropic = requests[1];
        Assert.Equal("sk-ant-test", anthropic.GetProperty("headers").GetProperty("x-api-key").GetString());
        Assert.Equal("2023-06-01", anthropic.GetProperty("headers").GetProperty("anthropic-version").GetString());
        Assert.Equal(JsonValueKind.Object, anthropic.GetProperty("body").ValueKind);
        Assert.Equal("m2", anthropic.GetProperty("body").GetProperty("model").GetString());
        Assert.Equal("second", anthropic.GetProperty("body").GetProperty("messages")[0].GetProperty("content").GetString());
    }

    [Fact]
    public async Task Request_log_keeps_the_last_200()
    {
        await ResetAsync();
        for (var i = 0; i < 205; i++)
        {
            using var response = await app.PostAsync(OpenAIPath, $$"""{"model":"m{{i}}","messages":[{"role":"user","content":"x"}]}""");
            response.EnsureSuccessStatusCode();
        }

        var requests = await GetAsync("/_fake/requests");

        Assert.Equal(200, requests.GetArrayLength());
        Assert.Equal("m5", requests[0].GetProperty("body").GetProperty("model").GetString());
        Assert.Equal("m204", requests[199].GetProperty("body").GetProperty("model").GetString());
    }

    [Fact]
    public async Task Invalid_json_is_recorded_as_a_string_and_refused()
    {
        await ResetAsync();
        using var response = await app.PostAsync(OpenAIPath, "{not json");

        Assert.Equal(400, (int)response.StatusCode);
        var requests = await GetAsync("/_fake/requests");
        Assert.Equal("{not json", requests[0].GetProperty("body").GetString());
    }

    [Fact]
    public async Task Stats_total_the_usage_reported_per_protocol()
    {
        await ResetAsync();
        var openai = await app.PostJsonAsync(OpenAIPath, """{"model":"m","messages":[{"role":"user","content":"one two"}]}""");
        var anthropic = await app.PostJsonAsync(AnthropicPath, """{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"three"}]}""");
        // A stream without include_usage reports no usage: it counts as a request, with no tokens.
        await app.PostStreamAsync(OpenAIPath, """{"model":"m","stream":true,"messages":[{"role":"user","content":"unreported"}]}""");
        // llama.cpp streams with include_usage report it in the last chunk.
        await app.PostStreamAsync(LlamaCppPath, """{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"four"}]}""");
        using (var error = await app.PostAsync(OpenAIPath, """{"model":"fault-500","messages":[]}"""))
        {
            Assert.Equal(500, (int)error.StatusCode);
        }

        var stats = await GetAsync("/_fake/stats");

        var openaiIn = openai.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        var openaiOut = openai.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        var anthropicIn = anthropic.GetProperty("usage").GetProperty("input_tokens").GetInt32();
        var anthropicOut = anthropic.GetProperty("usage").GetProperty("output_tokens").GetInt32();
        var llamaIn = WireFixture.InputTokens("four");
        AssertTotals(stats.GetProperty("by_protocol").GetProperty("openai"), 3, openaiIn, openaiOut);
        AssertTotals(stats.GetProperty("by_protocol").GetProperty("anthropic"), 1, anthropicIn, anthropicOut);
        AssertTotals(stats.GetProperty("by_protocol").GetProperty("llamacpp"), 1, llamaIn, 2);
        AssertTotals(stats, 5, openaiIn + anthropicIn + llamaIn, openaiOut + anthropicOut + 2);
    }

    [Fact]
    public async Task Cut_stream_counts_only_the_usage_reported_before_the_cut()
    {
        await ResetAsync();
        await DrainCutAsync(OpenAIPath, """{"model":"fault-cut-stream@1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}""");
        await DrainCutAsync(AnthropicPath, """{"model":"fault-cut-stream@1","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"a b c"}]}""");

        var stats = await GetAsync("/_fake/stats");

        // OpenAI's usage comes last: nothing was reported. Anthropic's message_start reported the
        // input tokens and output_tokens 1 before the cut.
        AssertTotals(stats.GetProperty("by_protocol").GetProperty("openai"), 1, 0, 0);
        AssertTotals(stats.GetProperty("by_protocol").GetProperty("anthropic"), 1, WireFixture.InputTokens("a b c"), 1);
    }

    [Fact]
    public async Task Reset_clears_requests_stats_and_fault_counters()
    {
        using (var first = await app.PostAsync(OpenAIPath, """{"model":"fault-fail-first@1","messages":[{"role":"user","content":"x"}]}"""))
        {
            Assert.Equal(500, (int)first.StatusCode);
        }
        using (var second = await app.PostAsync(OpenAIPath, """{"model":"fault-fail-first@1","messages":[{"role":"user","content":"x"}]}"""))
        {
            Assert.Equal(200, (int)second.StatusCode);
        }

        await ResetAsync();

        Assert.Equal(0, (await GetAsync("/_fake/requests")).GetArrayLength());
        AssertTotals(await GetAsync("/_fake/stats"), 0, 0, 0);
        using var afterReset = await app.PostAsync(OpenAIPath, """{"model":"fault-fail-first@1","messages":[{"role":"user","content":"x"}]}""");
        Assert.Equal(500, (int)afterReset.StatusCode);
    }

    [Fact]
    public async Task Concurrent_requests_are_all_counted()
    {
        await ResetAsync();
        var tasks = Enumerable.Range(0, 100).Select(async i =>
        {
            using var response = await app.PostAsync(i % 2 == 0 ? OpenAIPath : LlamaCppPath, """{"model":"m","messages":[{"role":"user","content":"a b"}]}""");
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsStringAsync(Ct);
        });
        await Task.WhenAll(tasks);

        var stats = await GetAsync("/_fake/stats");
        AssertTotals(stats, 100, 100 * WireFixture.InputTokens("a b"), 100 * 3);
        Assert.Equal(100, (await GetAsync("/_fake/requests")).GetArrayLength());
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/alive")]
    public async Task Health_endpoints_answer(string path)
    {
        using var response = await app.Client.GetAsync(path, Ct);

        Assert.Equal(200, (int)response.StatusCode);
    }

    private static void AssertTotals(JsonElement totals, long requests, long input, long output)
    {
        Assert.Equal(["requests", "input_tokens", "output_tokens"], JsonShape.Keys(totals).Take(3));
        Assert.Equal(requests, totals.GetProperty("requests").GetInt64());
        Assert.Equal(input, totals.GetProperty("input_tokens").GetInt64());
        Assert.Equal(output, totals.GetProperty("output_tokens").GetInt64());
    }

    private async Task DrainCutAsync(string path, string body)
    {
        using var response = await app.PostAsync(path, body);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync(Ct));
    }

    private async Task ResetAsync()
    {
        using var response = await app.Client.PostAsync("/_fake/reset", null, Ct);
        Assert.Equal(204, (int)response.StatusCode);
    }

    private async Task<JsonElement> GetAsync(string path)
    {
        using var response = await app.Client.GetAsync(path, Ct);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();
    }
}

