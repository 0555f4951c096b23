using System.Diagnostics;
using System.Text;
using System.Text.Json;
using static ModelGateway.Api.Tests.FakeUpstream.FakeUpstreamApp;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>Every magic model name of docs/fake-upstream.md, on every protocol where it differs.</summary>
public sealed class FaultTests(FakeUpstreamApp app) : IClassFixture<FakeUpstreamApp>
{
    public static TheoryData<string> Protocols => new() { "openai", "anthropic", "llamacpp" };

    private static string Body(string model, bool stream = false, string text = "one two three four five") =>
        $$"""{"model":"{{model}}","max_tokens":100,"stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"{{text}}"}]}""";

    [Theory]
    [InlineData("openai", "fault-500", 500, "server_error")]
    [InlineData("openai", "fault-503", 503, "server_error")]
    [InlineData("openai", "fault-429", 429, "requests")]
    [InlineData("openai", "fault-400", 400, "invalid_request_error")]
    [InlineData("openai", "fault-401", 401, "invalid_request_error")]
    [InlineData("anthropic", "fault-500", 500, "api_error")]
    [InlineData("anthropic", "fault-503", 529, "overloaded_error")]
    [InlineData("anthropic", "fault-429", 429, "rate_limit_error")]
    [InlineData("anthropic", "fault-400", 400, "invalid_request_error")]
    [InlineData("anthropic", "fault-401", 401, "authentication_error")]
    [InlineData("llamacpp", "fault-500", 500, "server_error")]
    [InlineData("llamacpp", "fault-503", 503, "unavailable_error")]
    [InlineData("llamacpp", "fault-429", 429, "unavailable_error")]
    [InlineData("llamacpp", "fault-400", 400, "invalid_request_error")]
    [InlineData("llamacpp", "fault-401", 401, "authentication_error")]
    public async Task Status_faults_answer_with_the_protocol_error_body(string protocol, string model, int status, string type)
    {
        var body = await app.PostJsonAsync(PathOf(protocol), Body(model), expectedStatus: status);

        switch (protocol)
        {
            case "openai":
                Assert.Equal(["message", "type", "param", "code"], JsonShape.Keys(body.GetProperty("error")));
                Assert.Equal(type, body.GetProperty("error").GetProperty("type").GetString());
                break;
            case "anthropic":
                JsonShape.AssertMatches(WireFixture.Json("anthropic_error_rate_limit_429.json"), body, exactKeys: true);
                Assert.Equal(type, body.GetProperty("error").GetProperty("type").GetString());
                break;
            default:
                JsonShape.AssertMatches(WireFixture.Json("llamacpp_error_401.json"), body, exactKeys: true);
                Assert.Equal(status, body.GetProperty("error").GetProperty("code").GetInt32());
                Assert.Equal(type, body.GetProperty("error").GetProperty("type").GetString());
                break;
        }
    }

    [Fact]
    public async Task Overloaded_anthropic_body_matches_the_529_fixture()
    {
        var body = await app.PostJsonAsync(AnthropicPath, Body("fault-503"), expectedStatus: 529);

        JsonShape.AssertMatches(WireFixture.Json("anthropic_error_overloaded_529.json"), body, exactKeys: false);
    }

    [Theory]
    [InlineData("fault-429", "1")]
    [InlineData("fault-429@7", "7")]
    public async Task Rate_limit_sends_retry_after(string model, string seconds)
    {
        foreach (var protocol in new[] { "openai", "anthropic", "llamacpp" })
        {
            using var response = await app.PostAsync(PathOf(protocol), Body(model));
            Assert.Equal(429, (int)response.StatusCode);
            Assert.Equal(seconds, response.Headers.GetValues("retry-after").Single());
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Fail_first_fails_n_calls_per_model_then_answers(string protocol)
    {
        var model = "fault-fail-first@2";
        var statuses = new List<int>();
        // Counted per model name since the last reset: a fresh reset makes the count start here.
        using (var reset = await app.Client.PostAsync("/_fake/reset", null, TestContext.Current.CancellationToken))
        {
            reset.EnsureSuccessStatusCode();
        }
        for (var i = 0; i < 4; i++)
        {
            using var response = await app.PostAsync(PathOf(protocol), Body(model));
            statuses.Add((int)response.StatusCode);
        }

        Assert.Equal([500, 500, 200, 200], statuses);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Slow_first_token_delays_the_headers(string protocol)
    {
        var watch = Stopwatch.StartNew();
        using var response = await app.PostAsync(PathOf(protocol), Body("fault-slow-first-token@400", stream: true));
        var elapsed = watch.Elapsed;

        Assert.True(response.IsSuccessStatusCode);
        Assert.True(elapsed >= TimeSpan.FromMilliseconds(380), $"headers after {elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task Slow_first_token_defaults_to_three_seconds()
    {
        var watch = Stopwatch.StartNew();
        using var response = await app.PostAsync(OpenAIPath, Body("fault-slow-first-token"));

        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(2900), $"headers after {watch.Elapsed.TotalMilliseconds} ms");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Late_end_ends_the_body_well_after_its_last_event(string protocol)
    {
        using var response = await app.PostAsync(PathOf(protocol), Body("fault-late-end@300", stream: true, text: "a b"));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
        var watch = Stopwatch.StartNew();
        string? last = null;
        var lastAt = TimeSpan.Zero;
        while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                (last, lastAt) = (line, watch.Elapsed);
            }
        }
        var endAt = watch.Elapsed;

        // The stream is complete (its protocol's last event came), and only its end was late.
        Assert.Contains(protocol == "anthropic" ? "message_stop" : "[DONE]", last);
        Assert.True(endAt - lastAt >= TimeSpan.FromMilliseconds(250), $"the body ended {(endAt - lastAt).TotalMilliseconds:0} ms after the last event");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Slow_chunks_spaces_the_events_as_they_are_flushed(string protocol)
    {
        using var response = await app.PostAsync(PathOf(protocol), Body("fault-slow-chunks@150", stream: true, text: "a b"));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
        var arrivals = new List<TimeSpan>();
        var watch = Stopwatch.StartNew();
        while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                arrivals.Add(watch.Elapsed);
            }
        }

        // Each event is flushed on its own, ~150 ms after the previous one.
        Assert.True(arrivals.Count >= 5);
        var gaps = arrivals.Zip(arrivals.Skip(1), (a, b) => b - a).ToList();
        Assert.True(gaps.Count(g => g >= TimeSpan.FromMilliseconds(100)) >= gaps.Count - 1, string.Join(",", gaps.Select(g => (int)g.TotalMilliseconds)));
        Assert.True(arrivals[^1] - arrivals[0] >= TimeSpan.FromMilliseconds(140 * (arrivals.Count - 1)));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Stamped_chunks_carry_when_the_request_arrived_and_when_each_chunk_was_written(string protocol)
    {
        var before = Stopwatch.GetTimestamp();
        using var response = await app.PostAsync(PathOf(protocol), Body("fault-stamped-chunks@60", stream: true, text: "a b c"));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
        var chunks = new List<(string Word, long Received, long Written, long Read)>();
        while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            var stamp = System.Text.RegularExpressions.Regex.Match(line, "\"(?:content|text)\":\"([^\"]*) \\[r=(\\d+) s=(\\d+)\\]\"");
            if (stamp.Success)
            {
                chunks.Add((stamp.Groups[1].Value, long.Parse(stamp.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture),
                    long.Parse(stamp.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture), Stopwatch.GetTimestamp()));
            }
        }

        // The words are the reply's, each followed by the stamps; one arrival for all, each write after the pacing, before the read.
        Assert.Equal(["Echo:", "a", "b", "c"], chunks.Select(c => c.Word.Trim()));
        Assert.Single(chunks.Select(c => c.Received).Distinct());
        Assert.InRange(chunks[0].Received, before, chunks[0].Written);
        Assert.All(chunks, c => Assert.True(c.Written <= c.Read, "written after it was read"));
        var gaps = chunks.Zip(chunks.Skip(1), (x, y) => Stopwatch.GetElapsedTime(x.Written, y.Written)).ToList();
        Assert.All(gaps, g => Assert.True(g >= TimeSpan.FromMilliseconds(50), $"chunks written {g} apart"));
    }

    [Theory]
    [InlineData("openai", "fault-cut-stream@2", 2)]
    [InlineData("anthropic", "fault-cut-stream@2", 2)]
    [InlineData("llamacpp", "fault-cut-stream@2", 2)]
    [InlineData("openai", "fault-cut-stream", 3)]
    [InlineData("anthropic", "fault-cut-stream", 3)]
    public async Task Cut_stream_aborts_after_n_content_chunks(string protocol, string model, int expectedChunks)
    {
        using var response = await app.PostAsync(PathOf(protocol), Body(model, stream: true));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
        var lines = new List<string>();

        var error = await Record.ExceptionAsync(async () =>
        {
            while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
            {
                lines.Add(line);
            }
        });

        Assert.NotNull(error);
        Assert.Equal(expectedChunks, lines.Count(IsContentChunk));
        Assert.DoesNotContain("data: [DONE]", lines);
        Assert.DoesNotContain(lines, l => l.Contains("message_stop"));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Malformed_chunk_comes_after_two_content_chunks_and_the_stream_goes_on(string protocol)
    {
        using var response = await app.PostAsync(PathOf(protocol), Body("fault-malformed-chunk", stream: true));
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var dataLines = body.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]).ToList();

        var invalid = dataLines.Select((d, i) => (d, i)).Where(x => x.d != "[DONE]" && !IsJson(x.d)).ToList();
        Assert.Single(invalid);
        var before = dataLines.Take(invalid[0].i).Select(d => "data: " + d).Count(IsContentChunk);
        Assert.Equal(2, before);
        // The rest follows: all six words, then the end of the stream.
        Assert.Equal(6, dataLines.Select(d => "data: " + d).Count(IsContentChunk));
        Assert.True(protocol == "anthropic" ? body.Contains("event: message_stop") : dataLines[^1] == "[DONE]");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Huge_reply_is_the_requested_number_of_mebibytes(string protocol)
    {
        var body = await app.PostJsonAsync(PathOf(protocol), Body("fault-huge@1").Replace("\"max_tokens\":100", "\"max_tokens\":1000000"));

        var text = protocol == "anthropic"
            ? body.GetProperty("content")[0].GetProperty("text").GetString()!
            : body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.Equal(1024 * 1024, Encoding.UTF8.GetByteCount(text));
    }

    [Fact]
    public async Task Huge_stream_defaults_to_eight_mebibytes()
    {
        var events = await app.PostStreamAsync(OpenAIPath,
            """{"model":"fault-huge","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}""");

        long bytes = 0;
        foreach (var e in events[..^2])
        {
            var delta = e.Json.GetProperty("choices")[0].GetProperty("delta");
            if (delta.TryGetProperty("content", out var content))
            {
                bytes += Encoding.UTF8.GetByteCount(content.GetString()!);
            }
        }
        Assert.Equal(8L * 1024 * 1024, bytes);
        Assert.True(events.Count > 100, "streamed in many chunks");
        Assert.Equal(events.Count - 4, events[^2].Json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Hang_never_answers_until_the_client_gives_up(string protocol)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromMilliseconds(500));
        var watch = Stopwatch.StartNew();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            app.Client.SendAsync(CreateRequest(PathOf(protocol), Body("fault-hang")), HttpCompletionOption.ResponseHeadersRead, cts.Token));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(450));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Connection_reset_aborts_before_any_response(string protocol)
    {
        var error = await Record.ExceptionAsync(() => app.PostAsync(PathOf(protocol), Body("fault-connection-reset")));

        Assert.True(error is HttpRequestException or IOException, error?.GetType().FullName ?? "no exception");
        Assert.False(TestContext.Current.CancellationToken.IsCancellationRequested);
    }

    [Fact]
    public async Task Unknown_fault_name_answers_normally()
    {
        var body = await app.PostJsonAsync(OpenAIPath, Body("fault-not-a-fault"));

        Assert.Equal("Echo: one two three four five", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    /// <summary>A data line that carries one word of the reply (OpenAI/llama.cpp content, Anthropic text_delta).</summary>
    private static bool IsContentChunk(string line)
    {
        if (!line.StartsWith("data: ", StringComparison.Ordinal) || !IsJson(line[6..]))
        {
            return false;
        }
        var json = JsonDocument.Parse(line[6..]).RootElement;
        if (json.TryGetProperty("delta", out var anthropicDelta))
        {
            return anthropicDelta.TryGetProperty("text", out _);
        }
        return json.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
            && choices[0].GetProperty("delta").TryGetProperty("content", out var content)
            && content.ValueKind == JsonValueKind.String && content.GetString()!.Length > 0;
    }

    private static bool IsJson(string text)
    {
        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
