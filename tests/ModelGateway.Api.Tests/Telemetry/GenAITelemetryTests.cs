using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using ModelGateway.Api.Tests.Support;
using OpenTelemetry.Trace;

namespace ModelGateway.Api.Tests.Telemetry;

/// <summary>An alias whose only target fails, with a fallback alias that answers: one failed attempt, then a fallback.</summary>
public sealed class TelemetryFixture : GatewayFixture
{
    /// <summary>What the gateway's own OpenTelemetry pipeline (ServiceDefaults) exported, to see which sources it records.</summary>
    public ExportedSpans Exported { get; } = new();

    protected override void ConfigureServices(Microsoft.Extensions.DependencyInjection.IServiceCollection services) =>
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(Exported));

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Gateway:Routes:primary-fails:Targets:0:Provider"] = "openrouter",
        ["Gateway:Routes:primary-fails:Targets:0:Model"] = "fault-500",
        ["Gateway:Routes:primary-fails:Fallbacks:0"] = "chat-default",
    };
}

public sealed class GenAITelemetryTests(TelemetryFixture fx) : IClassFixture<TelemetryFixture>
{
    [Fact]
    public async Task A_streamed_request_with_a_failed_attempt_and_a_fallback_has_one_genai_client_span_per_attempt()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "ModelGateway.Api" or "Microsoft.AspNetCore" or "System.Net.Http",
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.TraceId == traceId ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
            ActivityStopped = a => { if (a.TraceId == traceId) spans.Enqueue(a); },
        };
        ActivitySource.AddActivityListener(listener);

        var request = GatewayApp.Chat(new
        {
            model = "primary-fails", stream = true, temperature = 0.5, max_tokens = 64,
            messages = new[] { new { role = "user", content = "secret prompt text" } },
        });
        var clientSpanId = ActivitySpanId.CreateRandom();
        request.Headers.Add("traceparent", $"00-{traceId}-{clientSpanId}-01");
        using var client = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = fx.Gateway.Client.BaseAddress };
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("[DONE]", body.TrimEnd());

        // The stream's span ends when the relay disposes it, just after the response completes.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (spans.Count(s => s.Source.Name == "ModelGateway.Api") < 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        var attempts = spans.Where(s => s.Source.Name == "ModelGateway.Api" && s.DisplayName.StartsWith("chat ", StringComparison.Ordinal))
            .OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, attempts.Count);
        // The gateway's server span is the child of the client's; the fake upstream's server spans (same process) are deeper.
        var server = Assert.Single(spans, s => s.Kind == ActivityKind.Server && s.ParentSpanId == clientSpanId);

        var failed = attempts[0];
        Assert.Equal("chat fault-500", failed.DisplayName);
        Assert.Equal(ActivityKind.Client, failed.Kind);
        Assert.Equal(server.SpanId, failed.ParentSpanId);
        Assert.Equal("500", failed.GetTagItem("error.type"));
        Assert.Equal(1, failed.GetTagItem("model_gateway.attempt"));
        Assert.Equal(false, failed.GetTagItem("model_gateway.fallback"));

        var ok = attempts[1];
        Assert.Equal("chat openai/gpt-4o-mini", ok.DisplayName);
        Assert.Equal(server.SpanId, ok.ParentSpanId);
        Assert.Equal("chat", ok.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("openai", ok.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("openai/gpt-4o-mini", ok.GetTagItem("gen_ai.request.model"));
        Assert.Equal(64, ok.GetTagItem("gen_ai.request.max_tokens"));
        Assert.Equal(0.5, ok.GetTagItem("gen_ai.request.temperature"));
        Assert.Equal(new[] { "stop" }, ok.GetTagItem("gen_ai.response.finish_reasons"));
        Assert.StartsWith("chatcmpl-", (string)ok.GetTagItem("gen_ai.response.id")!);
        Assert.Equal("openai/gpt-4o-mini", ok.GetTagItem("gen_ai.response.model"));
        Assert.Equal(4, ok.GetTagItem("gen_ai.usage.output_tokens")); // "Echo: secret prompt text"
        Assert.True((int)ok.GetTagItem("gen_ai.usage.input_tokens")! > 0);
        Assert.Equal("127.0.0.1", ok.GetTagItem("server.address"));
        Assert.Equal(2, ok.GetTagItem("model_gateway.attempt"));
        Assert.Equal(true, ok.GetTagItem("model_gateway.fallback"));
        Assert.Equal("chat-default", ok.GetTagItem("model_gateway.route.alias"));
        Assert.Equal("dev", ok.GetTagItem("model_gateway.tenant.id"));
        Assert.Equal("dev", failed.GetTagItem("model_gateway.tenant.id"));
        Assert.IsType<double>(ok.GetTagItem("model_gateway.reservation_usd"));
        Assert.Equal("dev", server.GetTagItem("model_gateway.tenant.id"));
        Assert.Null(ok.GetTagItem("error.type"));

        // Admission and settlement: one Redis script each, a CLIENT span per run under the server span (database conventions).
        foreach (var script in new[] { "admit", "settle" })
        {
            var redis = Assert.Single(spans, s => s.DisplayName == "EVALSHA " + script);
            Assert.Equal(ActivityKind.Client, redis.Kind);
            Assert.Equal(server.SpanId, redis.ParentSpanId);
            Assert.Equal("redis", redis.GetTagItem("db.system.name"));
            Assert.Equal("EVALSHA", redis.GetTagItem("db.operation.name"));
            Assert.Equal(script, redis.GetTagItem("db.stored_procedure.name"));
            Assert.Equal(ActivityStatusCode.Unset, redis.Status);
        }
        Assert.True(spans.Single(s => s.DisplayName == "EVALSHA admit").StartTimeUtc < attempts[0].StartTimeUtc, "admission comes before the first attempt");

        // The HTTP call to the provider is a child of its attempt span, so the trace context reaching the provider is the attempt's.
        var call = Assert.Single(spans, s => s.Source.Name == "System.Net.Http" && s.ParentSpanId == ok.SpanId);
        // The gateway's pipeline records HttpClient's own span (the "System.Net.Http" source, no instrumentation package),
        // with the HTTP client semantic conventions.
        var exported = Assert.Single(fx.Exported.Snapshot(), s => s.SpanId == call.SpanId);
        Assert.Equal(ActivityKind.Client, exported.Kind);
        Assert.Equal("POST", exported.GetTagItem("http.request.method"));
        Assert.Equal(200, exported.GetTagItem("http.response.status_code"));
        Assert.Equal("127.0.0.1", exported.GetTagItem("server.address"));
        Assert.Contains(fx.Exported.Snapshot(), s => s.SpanId == ok.SpanId);

        // Content capture is off by default: no tag or event anywhere carries the prompt or the answer.
        Assert.DoesNotContain(spans.SelectMany(s => s.Events), e => e.Name.StartsWith("gen_ai.", StringComparison.Ordinal));
        Assert.DoesNotContain(spans.SelectMany(s => s.TagObjects), t => t.Value?.ToString()?.Contains("secret prompt") == true);
        Assert.DoesNotContain(spans.SelectMany(s => s.TagObjects), t => t.Value?.ToString()?.Contains("Echo:") == true);
    }

    [Fact]
    public async Task GenAI_metric_instruments_are_recorded_with_their_units()
    {
        var seen = new ConcurrentDictionary<string, string?>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ModelGateway.Api")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, _, _, _) => seen[i.Name] = i.Unit);
        listener.SetMeasurementEventCallback<double>((i, _, _, _) => seen[i.Name] = i.Unit);
        listener.Start();

        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = "hi" } } }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        Assert.Equal("{token}", seen["gen_ai.client.token.usage"]);
        Assert.Equal("s", seen["gen_ai.client.operation.duration"]);
        Assert.Equal("{attempt}", seen["model_gateway.upstream.attempts"]);
    }
}

/// <summary>An exporter's collection that takes spans from any thread (the pipeline sees every gateway in the test process).</summary>
public sealed class ExportedSpans : System.Collections.ObjectModel.Collection<Activity>
{
    private readonly Lock _lock = new();

    public Activity[] Snapshot()
    {
        lock (_lock)
        {
            return [.. this];
        }
    }

    protected override void InsertItem(int index, Activity item)
    {
        lock (_lock)
        {
            base.InsertItem(Count, item);
        }
    }
}
