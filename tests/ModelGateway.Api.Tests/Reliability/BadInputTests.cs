using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;
using Npgsql;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>
/// A tenant with every admission counter in play (requests and tokens per minute, a budget), so a refused request that
/// moved any of them would show in Redis. Its first request is served during start-up: the period marker, windows and
/// ledger exist before the bad input arrives, and a test sees changes, not first writes.
/// </summary>
public sealed class BadInputGateway : GatewayFixture
{
    public const string Tenant = "strict";
    public const string Key = "sk-strict-0123456789abcdef";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = Tenant,
        ["Tenancy:Seed:1:ApiKeys:0"] = Key,
        ["Tenancy:Seed:1:RequestsPerMinute"] = "100000",
        ["Tenancy:Seed:1:TokensPerMinute"] = "1000000000",
        ["Tenancy:Seed:1:BudgetUsd"] = "1000",
        ["Ledger:FlushInterval"] = "00:00:00.050",
        ["Traces:FlushInterval"] = "00:00:00.050",
    };

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        using var response = await Gateway.SendAsync(GatewayApp.Chat(BadInputTests.Valid, Key));
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"warm-up request: HTTP {(int)response.StatusCode}");
        }
        await TenantFootprint.LedgerRowsAsync(PostgresConnectionString, Tenant, expectAtLeast: 1);
    }
}

/// <summary>
/// Issue 10's bad input, one row each: every case gets a precise 4xx in the OpenAI envelope, and changes nothing: the
/// provider (the fake upstream's request count) never hears of it, the tenant's Redis admission keys (rate windows, spend,
/// reservations) are byte for byte as before, and no usage-ledger row is written. The last test is the control: a valid
/// request moves all three, so these checks can fail.
/// </summary>
public sealed class BadInputTests(BadInputGateway fx) : IClassFixture<BadInputGateway>
{
    public const string Valid = """{"model":"chat-default","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A body, its Content-Type and what the gateway must answer. Param null: the envelope's param is null.</summary>
    private sealed record Case(Func<HttpContent> Content, HttpStatusCode Status, string Code, string? Param);

    private const int MiB = 1024 * 1024;

    private static readonly Dictionary<string, Case> Table = new()
    {
        // Malformed JSON and bodies that are not a request object: 400, nothing to point at.
        ["malformed JSON (truncated)"] = new(() => Json("""{"model":"chat-default","messages":[{"role":"user","""), HttpStatusCode.BadRequest, "invalid_json", null),
        ["malformed JSON (trailing comma)"] = new(() => Json("""{"model":"chat-default","messages":[],}"""), HttpStatusCode.BadRequest, "invalid_json", null),
        ["empty body"] = new(() => Json(""), HttpStatusCode.BadRequest, "invalid_json", null),
        ["duplicate property names"] = new(() => Json("""{"model":"chat-default","model":"chat-local","messages":[{"role":"user","content":"hi"}]}"""), HttpStatusCode.BadRequest, "invalid_json", null),
        ["duplicate property names nested in a field"] = new(() => With("\"metadata\":{\"a\":1,\"a\":2}"), HttpStatusCode.BadRequest, "invalid_json", null),
        ["a JSON array, not an object"] = new(() => Json("""["chat-default"]"""), HttpStatusCode.BadRequest, "invalid_json", null),

        // Wrong types: 400 invalid_type naming the field.
        ["model is a number"] = new(() => Json("""{"model":42,"messages":[{"role":"user","content":"hi"}]}"""), HttpStatusCode.BadRequest, "invalid_type", "model"),
        ["messages is a string"] = new(() => Json("""{"model":"chat-default","messages":"hi"}"""), HttpStatusCode.BadRequest, "invalid_type", "messages"),
        ["a message is a string"] = new(() => Json("""{"model":"chat-default","messages":["hi"]}"""), HttpStatusCode.BadRequest, "invalid_type", "messages[0]"),
        ["content is a number"] = new(() => With("\"messages\":[{\"role\":\"user\",\"content\":7}]"), HttpStatusCode.BadRequest, "invalid_type", "messages[0].content"),
        ["stream is a string"] = new(() => With("\"stream\":\"yes\""), HttpStatusCode.BadRequest, "invalid_type", "stream"),
        ["temperature is a string"] = new(() => With("\"temperature\":\"hot\""), HttpStatusCode.BadRequest, "invalid_type", "temperature"),
        ["an unknown role"] = new(() => With("\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]"), HttpStatusCode.BadRequest, "invalid_value", "messages[0].role"),
        ["model missing"] = new(() => Json("""{"messages":[{"role":"user","content":"hi"}]}"""), HttpStatusCode.BadRequest, "missing_required_parameter", "model"),

        // Unknown model: 404 model_not_found, as OpenAI answers it.
        ["unknown model"] = new(() => With("\"model\":\"no-such-model\""), HttpStatusCode.NotFound, "model_not_found", "model"),

        // Empty: nothing to answer.
        ["empty messages array"] = new(() => With("\"messages\":[]"), HttpStatusCode.BadRequest, "empty_array", "messages"),
        ["empty content"] = new(() => With("\"messages\":[{\"role\":\"user\",\"content\":\"\"}]"), HttpStatusCode.BadRequest, "empty_content", "messages"),
        ["empty content parts"] = new(() => With("\"messages\":[{\"role\":\"system\",\"content\":\"\"},{\"role\":\"user\",\"content\":[]}]"), HttpStatusCode.BadRequest, "empty_content", "messages"),

        // Oversized: the body limit (Gateway:MaxRequestBodyBytes, 1 MiB) bounds content and message count alike: 413.
        ["oversized content (2 MiB string)"] = new(() => With($"\"messages\":[{{\"role\":\"user\",\"content\":\"{new string('a', 2 * MiB)}\"}}]"), HttpStatusCode.RequestEntityTooLarge, "request_too_large", null),
        ["oversized messages (50,000 messages)"] = new(() => With("\"messages\":[" + string.Join(",", Enumerable.Repeat("{\"role\":\"user\",\"content\":\"hello\"}", 50_000)) + "]"), HttpStatusCode.RequestEntityTooLarge, "request_too_large", null),
        ["body over the limit, chunked (no Content-Length)"] = new(() => new UnsizedContent(Encoding.UTF8.GetBytes(Valid[..^1] + ",\"user\":\"" + new string('b', MiB + 10) + "\"}")), HttpStatusCode.RequestEntityTooLarge, "request_too_large", null),

        // Deep nesting: refused by the parser's depth limit (64), never a stack overflow or a 500.
        ["10,000 nested arrays"] = new(() => Json(new string('[', 10_000) + new string(']', 10_000)), HttpStatusCode.BadRequest, "invalid_json", null),
        ["10,000 nested objects in a field"] = new(() => With("\"metadata\":" + string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000)), HttpStatusCode.BadRequest, "invalid_json", null),

        // Invalid UTF-8 (0xC3 0x28: a lead byte followed by a non-continuation byte), in a value and in a property name.
        ["invalid UTF-8 in content"] = new(() => Bytes([.. "{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\",\"content\":\"h"u8, 0xC3, 0x28, .. "\"}]}"u8]), HttpStatusCode.BadRequest, "invalid_json", null),
        ["invalid UTF-8 in a property name"] = new(() => Bytes([.. "{\"model\":\"chat-default\",\"x"u8, 0xFF, .. "\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"u8]), HttpStatusCode.BadRequest, "invalid_json", null),

        // Huge numbers: valid JSON numbers out of range, so invalid_value (not invalid_type, not a 500 from an overflow).
        ["temperature 1e400"] = new(() => With("\"temperature\":1e400"), HttpStatusCode.BadRequest, "invalid_value", "temperature"),
        ["max_tokens 2^64"] = new(() => With("\"max_tokens\":18446744073709551616"), HttpStatusCode.BadRequest, "invalid_value", "max_tokens"),
        ["max_tokens 1e400"] = new(() => With("\"max_tokens\":1e400"), HttpStatusCode.BadRequest, "invalid_value", "max_tokens"),

        // max_tokens out of range (1 to 10,000,000) or not an integer.
        ["max_tokens negative"] = new(() => With("\"max_tokens\":-5"), HttpStatusCode.BadRequest, "invalid_value", "max_tokens"),
        ["max_tokens zero"] = new(() => With("\"max_tokens\":0"), HttpStatusCode.BadRequest, "invalid_value", "max_tokens"),
        ["max_tokens absurd (1,000,000,000)"] = new(() => With("\"max_tokens\":1000000000"), HttpStatusCode.BadRequest, "invalid_value", "max_tokens"),
        ["max_completion_tokens a fraction"] = new(() => With("\"max_completion_tokens\":1.5"), HttpStatusCode.BadRequest, "invalid_type", "max_completion_tokens"),

        // Structured output: a schema that does not compile, an unknown format type.
        ["invalid JSON Schema"] = new(() => With("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"nonsense\"}}}"), HttpStatusCode.BadRequest, "invalid_json_schema", "response_format"),
        ["unknown response_format type"] = new(() => With("\"response_format\":{\"type\":\"xml\"}"), HttpStatusCode.BadRequest, "invalid_value", "response_format.type"),

        // Tool definitions.
        ["tools is an object"] = new(() => With("\"tools\":{}"), HttpStatusCode.BadRequest, "invalid_type", "tools"),
        ["tool without a function name"] = new(() => With("\"tools\":[{\"type\":\"function\",\"function\":{\"parameters\":{}}}]"), HttpStatusCode.BadRequest, "invalid_value", "tools[0]"),
        ["tool name with spaces"] = new(() => With("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get weather\"}}]"), HttpStatusCode.BadRequest, "invalid_value", "tools[0]"),
        ["tool parameters not an object"] = new(() => With("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":\"string\"}}]"), HttpStatusCode.BadRequest, "invalid_type", "tools[0].function.parameters"),
        ["duplicate tool names"] = new(() => With("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"), HttpStatusCode.BadRequest, "duplicate_tool_name", "tools[1].function.name"),

        // Wrong Content-Type: 415, the body is not even read.
        ["Content-Type text/plain"] = new(() => new StringContent(Valid, Encoding.UTF8, "text/plain"), HttpStatusCode.UnsupportedMediaType, "unsupported_media_type", null),
        ["Content-Type form (curl -d)"] = new(() => new StringContent(Valid, Encoding.UTF8, "application/x-www-form-urlencoded"), HttpStatusCode.UnsupportedMediaType, "unsupported_media_type", null),
        ["JSON declared as UTF-16"] = new(() => new StringContent(Valid, Encoding.Unicode, "application/json"), HttpStatusCode.UnsupportedMediaType, "unsupported_media_type", null),
    };

    public static TheoryData<string> Cases => [.. Table.Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_gets_a_precise_4xx_and_changes_nothing(string name)
    {
        var expected = Table[name];
        // The ledger first: a served request's row is queued after its settlement's reply, so once the rows are in, Redis is settled.
        var ledgerBefore = await TenantFootprint.LedgerRowsAsync(fx.PostgresConnectionString, BadInputGateway.Tenant, expectAtLeast: 1);
        var redisBefore = await TenantFootprint.RedisAsync(fx.Redis.ConnectionString, BadInputGateway.Tenant);
        var upstreamBefore = await UpstreamRequestsAsync();
        var clock = Stopwatch.StartNew();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = expected.Content() };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", BadInputGateway.Key);
        using var response = await fx.Gateway.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync(Ct);
        TestContext.Current.TestOutputHelper?.WriteLine($"{name}: HTTP {(int)response.StatusCode} {text}");

        Assert.True(expected.Status == response.StatusCode, $"{name}: expected {(int)expected.Status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(expected.Code, error.GetProperty("code").GetString());
        Assert.Equal(expected.Param, error.GetProperty("param").GetString());

        Assert.Equal(upstreamBefore, await UpstreamRequestsAsync());
        AssertUnchanged(redisBefore, await TenantFootprint.RedisAsync(fx.Redis.ConnectionString, BadInputGateway.Tenant), clock.Elapsed);
        // The request's trace row (written for every authenticated request, by a writer flushing as often as the ledger's)
        // shows the request is over and recorded; a ledger row, had one been queued, would be in by then too.
        await WaitForTraceAsync(response.Headers.GetValues("x-trace-id").Single());
        await Task.Delay(150, Ct);
        Assert.Equal(ledgerBefore, await TenantFootprint.LedgerRowsAsync(fx.PostgresConnectionString, BadInputGateway.Tenant, expectAtLeast: 1));
    }

    /// <summary>The control: the checks above see a served request's footprint.</summary>
    [Fact]
    public async Task A_valid_request_moves_the_counters_the_bad_input_test_watches()
    {
        var redisBefore = await TenantFootprint.RedisTextAsync(fx.Redis.ConnectionString, BadInputGateway.Tenant);
        var upstreamBefore = await UpstreamRequestsAsync();
        var ledgerBefore = await TenantFootprint.LedgerRowsAsync(fx.PostgresConnectionString, BadInputGateway.Tenant, expectAtLeast: 1);

        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(Valid, BadInputGateway.Key));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        Assert.Equal(upstreamBefore + 1, await UpstreamRequestsAsync());
        Assert.NotEqual(redisBefore, await TenantFootprint.RedisTextAsync(fx.Redis.ConnectionString, BadInputGateway.Tenant));
        Assert.Equal(ledgerBefore + 1, await TenantFootprint.LedgerRowsAsync(fx.PostgresConnectionString, BadInputGateway.Tenant, ledgerBefore + 1));
    }

    /// <summary>No key added or changed. A key may only vanish by expiring (a rate window of the warm-up's minute).</summary>
    private static void AssertUnchanged(SortedDictionary<string, (string Value, long TtlMs)> before,
        SortedDictionary<string, (string Value, long TtlMs)> after, TimeSpan elapsed)
    {
        foreach (var (key, (value, _)) in after)
        {
            Assert.True(before.TryGetValue(key, out var old), $"new Redis key {key} = {value}");
            Assert.True(old.Value == value, $"Redis key {key} changed: {old.Value} → {value}");
        }
        foreach (var (key, (_, ttl)) in before)
        {
            Assert.True(after.ContainsKey(key) || (ttl >= 0 && ttl < elapsed.TotalMilliseconds + 2000), $"Redis key {key} deleted");
        }
    }

    private async Task WaitForTraceAsync(string traceId)
    {
        await using var connection = new NpgsqlConnection(fx.PostgresConnectionString);
        await connection.OpenAsync(Ct);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM traces WHERE trace_id = @id", connection);
            cmd.Parameters.AddWithValue("id", traceId);
            if ((long)(await cmd.ExecuteScalarAsync(Ct))! > 0)
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, $"trace {traceId} never written");
            await Task.Delay(50, Ct);
        }
    }

    private async Task<long> UpstreamRequestsAsync() =>
        (await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", Ct)).GetProperty("requests").GetInt64();

    private static ByteArrayContent Bytes(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static ByteArrayContent Json(string body) => Bytes(Encoding.UTF8.GetBytes(body));

    private static readonly string[] ValidFields = ["\"model\":\"chat-default\"", "\"max_tokens\":16", "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"];

    /// <summary>The valid request with one field added or replaced (as text: some of these fields no JSON DOM would hold).</summary>
    private static ByteArrayContent With(string field) =>
        Json("{" + string.Join(",", ValidFields.Where(f => !field.StartsWith(f[..(f.IndexOf(':') + 1)], StringComparison.Ordinal)).Append(field)) + "}");

    /// <summary>A body sent chunked: the gateway cannot refuse it from Content-Length and must count while reading.</summary>
    private sealed class UnsizedContent(byte[] body) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(body).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
