using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Telemetry;

/// <summary>Content capture turned on, and a tenant limited to one request a minute (to see refusals counted).</summary>
public sealed class CaptureFixture : GatewayFixture
{
    public const string LimitedKey = "sk-telemetry-limited";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Gateway:Telemetry:CaptureContent"] = "true",
        ["Tenancy:Seed:1:Id"] = "limited",
        ["Tenancy:Seed:1:ApiKeys:0"] = LimitedKey,
        ["Tenancy:Seed:1:RequestsPerMinute"] = "1",
        ["Tenancy:Seed:1:BudgetUsd"] = "5",
        ["Tenancy:Seed:2:Id"] = "overhead-measured",
        ["Tenancy:Seed:2:ApiKeys:0"] = OverheadKey,
        ["Tenancy:Seed:2:RequestsPerMinute"] = "1",
    };

    /// <summary>A tenant of its own for the overhead test (the meter is process-wide; no other fixture seeds this id).</summary>
    public const string OverheadKey = "sk-telemetry-overhead";
}

public sealed class GatewayTelemetryTests(CaptureFixture fx) : IClassFixture<CaptureFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task With_capture_on_the_attempt_span_carries_the_conventions_content_event_and_never_the_key(bool stream)
    {
        await ResetLimitAsync();
        var (spans, listener) = Listen();
        using (listener)
        {
            using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new
            {
                model = "chat-default", stream,
                messages = new object[]
                {
                    new { role = "system", content = "be terse" },
                    new { role = "user", content = "capture me please" },
                },
            }, CaptureFixture.LimitedKey));
            var body = await response.Content.ReadAsStringAsync(Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

            var attempt = await SingleAttemptAsync(spans, response);
            Assert.Equal("limited", attempt.GetTagItem("model_gateway.tenant.id"));
            // The tenant is budgeted: admission reserved its worst case, and the span says how much.
            Assert.True((double)attempt.GetTagItem("model_gateway.reservation_usd")! > 0);

            var details = Assert.Single(attempt.Events, e => e.Name == "gen_ai.client.inference.operation.details");
            var tags = details.Tags.ToDictionary(t => t.Key, t => t.Value as string);
            using var input = JsonDocument.Parse(tags["gen_ai.input.messages"]!);
            var user = Assert.Single(input.RootElement.EnumerateArray());
            Assert.Equal("user", user.GetProperty("role").GetString());
            Assert.Equal("capture me please", user.GetProperty("parts")[0].GetProperty("content").GetString());
            using var system = JsonDocument.Parse(tags["gen_ai.system_instructions"]!);
            Assert.Equal("be terse", system.RootElement[0].GetProperty("content").GetString());
            using var output = JsonDocument.Parse(tags["gen_ai.output.messages"]!);
            var answer = output.RootElement[0];
            Assert.Equal("assistant", answer.GetProperty("role").GetString());
            Assert.Equal("stop", answer.GetProperty("finish_reason").GetString());
            Assert.Contains("Echo: capture me please", answer.GetProperty("parts")[0].GetProperty("content").GetString());
            Assert.Contains(stream ? "[DONE]" : "Echo: capture me please", body);

            // Content, yes; credentials, never (the tenant key and the provider key the Anthropic provider is configured with).
            var everything = spans.SelectMany(s => s.TagObjects.Select(t => t.Value?.ToString())
                .Concat(s.Events.SelectMany(e => e.Tags.Select(t => t.Value?.ToString())))).ToList();
            Assert.DoesNotContain(everything, v => v?.Contains(CaptureFixture.LimitedKey) == true);
            Assert.DoesNotContain(everything, v => v?.Contains("sk-ant-fake") == true);
        }
        await ResetLimitAsync();
    }

    [Fact]
    public async Task Requests_are_counted_by_outcome_refusals_by_reason_and_spend_by_tenant()
    {
        var requests = new ConcurrentQueue<(string Outcome, string Tenant, int Status)>();
        var refusals = new ConcurrentQueue<(string Reason, string Tenant)>();
        var spend = new ConcurrentDictionary<string, double>();
        using var meter = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ModelGateway.Api" && instrument.Name.StartsWith("model_gateway.", StringComparison.Ordinal))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meter.SetMeasurementEventCallback<long>((i, value, tags, _) =>
        {
            var t = ToDictionary(tags);
            if (i.Name == "model_gateway.requests")
            {
                Assert.Equal("{request}", i.Unit);
                requests.Enqueue(((string)t["model_gateway.outcome"]!, (string)t["model_gateway.tenant.id"]!, (int)t["http.response.status_code"]!));
            }
            else if (i.Name == "model_gateway.admissions.refused")
            {
                refusals.Enqueue(((string)t["model_gateway.refusal.reason"]!, (string)t["model_gateway.tenant.id"]!));
            }
        });
        meter.SetMeasurementEventCallback<double>((i, value, tags, _) =>
        {
            if (i.Name == "model_gateway.spend")
            {
                Assert.Equal("{USD}", i.Unit);
                spend.AddOrUpdate((string)ToDictionary(tags)["model_gateway.tenant.id"]!, value, (_, v) => v + value);
            }
        });
        meter.Start();
        await ResetLimitAsync();

        // One request a minute: the first is served and billed, the second refused by the rate limit.
        using (var ok = await fx.Gateway.SendAsync(Chat(CaptureFixture.LimitedKey)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var limited = await fx.Gateway.SendAsync(Chat(CaptureFixture.LimitedKey)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        }
        // Another tenant's failed upstream call: counted under its own tenant and outcome.
        using (var failed = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "fault-400", messages = new[] { new { role = "user", content = "x" } } })))
        {
            Assert.Equal(HttpStatusCode.BadRequest, failed.StatusCode);
        }

        // Counted when the request's handler ends, which may be just after the client has read the response.
        await Eventually(() => requests.Contains(("ok", "limited", 200)) && requests.Contains(("refused", "limited", 429))
            && requests.Contains(("upstream_error", "dev", 400)));
        Assert.Contains(("rate_limit_rpm", "limited"), refusals);
        Assert.True(spend.TryGetValue("limited", out var usd) && usd > 0, "the served request's cost is counted for its tenant");
        await ResetLimitAsync();
    }

    [Fact]
    public async Task The_time_the_gateway_adds_ahead_of_the_provider_and_admissions_part_of_it_are_measured()
    {
        const string tenant = "overhead-measured";
        var overhead = new ConcurrentQueue<double>();
        var admissions = new ConcurrentQueue<(string Result, double Seconds)>();
        using var meter = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ModelGateway.Api" && instrument.Name is "model_gateway.overhead" or "model_gateway.admission.duration")
                {
                    // Sub-millisecond buckets: the SDK's default boundaries start at 5 s.
                    Assert.Equal("s", instrument.Unit);
                    Assert.Equal(0.00005, ((Histogram<double>)instrument).Advice!.HistogramBucketBoundaries![0]);
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meter.SetMeasurementEventCallback<double>((i, value, tags, _) =>
        {
            var t = ToDictionary(tags);
            if ((string?)t["model_gateway.tenant.id"] != tenant)
            {
                return;
            }
            if (i.Name == "model_gateway.overhead")
            {
                overhead.Enqueue(value);
            }
            else
            {
                admissions.Enqueue(((string)t["model_gateway.admission.result"]!, value));
            }
        });
        meter.Start();
        await ResetLimitAsync(tenant);

        // One request a minute: the first is admitted and routed, the second refused by admission and never routed.
        var clock = Stopwatch.StartNew();
        using (var ok = await fx.Gateway.SendAsync(Chat(CaptureFixture.OverheadKey)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        var total = clock.Elapsed.TotalSeconds;
        using (var refused = await fx.Gateway.SendAsync(Chat(CaptureFixture.OverheadKey)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        await Eventually(() => admissions.Count == 2);
        var (admitted, refusedAdmission) = (admissions.ElementAt(0), admissions.ElementAt(1));
        Assert.Equal("admitted", admitted.Result);
        Assert.Equal("refused", refusedAdmission.Result);
        // Recorded when routing begins, before the answer is written: the one routed request, and it is all there is.
        var routed = Assert.Single(overhead);
        Assert.InRange(routed, admitted.Seconds, total);
        Assert.True(admitted.Seconds > 0 && refusedAdmission.Seconds > 0);
        await ResetLimitAsync(tenant);
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the expected measurements were not recorded within 10 s");
            await Task.Delay(20, Ct);
        }
    }

    private static HttpRequestMessage Chat(string key) =>
        GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = "count me" } } }, key);

    /// <summary>Clears a limited tenant's minute window so each test starts with its one request available.</summary>
    private async Task ResetLimitAsync(string tenant = "limited")
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(fx.Redis.ConnectionString);
        var server = redis.GetServers()[0];
        foreach (var key in server.Keys(pattern: $"*{{t:{tenant}}}:rpm:*"))
        {
            await redis.GetDatabase().KeyDeleteAsync(key);
        }
    }

    private static Dictionary<string, object?> ToDictionary(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var d = new Dictionary<string, object?>();
        foreach (var t in tags)
        {
            d[t.Key] = t.Value;
        }
        return d;
    }

    private static (ConcurrentQueue<Activity> Spans, ActivityListener Listener) Listen()
    {
        var spans = new ConcurrentQueue<Activity>();
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "ModelGateway.Api" or "Microsoft.AspNetCore" or "System.Net.Http",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return (spans, listener);
    }

    /// <summary>The one attempt span of the response's trace (a stream's span ends just after the response does).</summary>
    private static async Task<Activity> SingleAttemptAsync(ConcurrentQueue<Activity> spans, HttpResponseMessage response)
    {
        var traceId = response.Headers.GetValues("x-trace-id").Single();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            var found = spans.Where(s => s.Source.Name == "ModelGateway.Api" && s.Kind == ActivityKind.Client
                && s.DisplayName.StartsWith("chat ", StringComparison.Ordinal) && s.TraceId.ToHexString() == traceId).ToList();
            if (found.Count > 0)
            {
                return Assert.Single(found);
            }
            await Task.Delay(20, Ct);
        }
        throw new TimeoutException("no attempt span for trace " + traceId);
    }
}
