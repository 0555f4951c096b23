using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.StructuredOutput;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.StructuredOutput;

/// <summary>
/// The default aliases, plus for each wire protocol (<c>openai</c>, <c>anthropic</c>, <c>llama</c>) one alias per schema-* magic
/// model of the fake (<c>{magic}-{protocol}</c>), one whose route enables repair (<c>repairing-{protocol}</c>) and one whose
/// route enables coercion (<c>coercing-{protocol}</c>). Tenant <c>so</c> has a budget, so reservations and spend show in Redis.
/// </summary>
public sealed class StructuredOutputFixture : GatewayFixture
{
    public const string BudgetKey = "sk-so-budgeted-0123456789";
    public const string TightKey = "sk-so-tight-0123456789";

    public static readonly string[] Protocols = ["openai", "anthropic", "llama"];

    public static string Provider(string protocol) => protocol switch
    {
        "openai" => "openrouter",
        "anthropic" => "anthropic",
        _ => "llamacpp",
    };

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings
    {
        get
        {
            var s = new Dictionary<string, string?>
            {
                ["Tenancy:Seed:1:Id"] = "so",
                ["Tenancy:Seed:1:ApiKeys:0"] = BudgetKey,
                ["Tenancy:Seed:1:BudgetUsd"] = "10",
                ["Ledger:FlushInterval"] = "00:00:00.050",
                // chat-default costs 0.15 / 0.60 USD per million tokens: a 1,000-token answer is ~600 µ$, two calls are more
                // than this tenant's 1,000 µ$ per-request cap.
                ["Tenancy:Seed:2:Id"] = "tight",
                ["Tenancy:Seed:2:ApiKeys:0"] = TightKey,
                ["Tenancy:Seed:2:MaxUsdPerRequest"] = "0.001",
            };
            foreach (var protocol in Protocols)
            {
                foreach (var magic in (string[])["schema-invalid-json", "schema-code-fence", "schema-wrong-types", "schema-invalid-then-valid"])
                {
                    Route(s, $"{magic}-{protocol}", protocol, $"{magic}@{protocol}");
                }
                Route(s, $"norepair-{protocol}", protocol, $"schema-invalid-then-valid@norepair-{protocol}");
                Route(s, $"repairing-{protocol}", protocol, $"schema-invalid-then-valid@route-{protocol}");
                s[$"Gateway:Routes:repairing-{protocol}:StructuredOutput:Repair"] = "true";
                Route(s, $"coercing-{protocol}", protocol, $"schema-wrong-types@route-{protocol}");
                s[$"Gateway:Routes:coercing-{protocol}:StructuredOutput:Coerce"] = "true";
            }
            return s;
        }
    }

    private static void Route(Dictionary<string, string?> s, string alias, string protocol, string model)
    {
        s[$"Gateway:Routes:{alias}:Targets:0:Provider"] = Provider(protocol);
        s[$"Gateway:Routes:{alias}:Targets:0:Model"] = model;
        s[$"Gateway:Routes:{alias}:Targets:0:InputPerMillion"] = "1";
        s[$"Gateway:Routes:{alias}:Targets:0:OutputPerMillion"] = "2";
    }
}

/// <summary>
/// Issue 6 end to end: each protocol through the gateway and the fake upstream. The constrained request reaches the provider
/// in its own form, valid output passes, invalid output fails naming each pointer and keyword, repair and coercion work,
/// streams end with an error event instead of <c>[DONE]</c> when their content fails, an invalid schema is refused before
/// anything is reserved or billed, and the trace records the result.
/// </summary>
public sealed class GatewayStructuredOutputTests(StructuredOutputFixture fx) : IClassFixture<StructuredOutputFixture>
{
    private const string Schema = """
        {"type":"object","properties":{"name":{"type":"string","minLength":2},"age":{"type":"integer","minimum":0},
         "active":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}}},
         "required":["name","age","active"],"additionalProperties":false}
        """;

    public static readonly TheoryData<string> Protocols = ["openai", "anthropic", "llama"];

    public static readonly TheoryData<string> DefaultAliases = ["chat-default", "chat-anthropic", "chat-local"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static JsonObject Body(string model, bool stream = false, string? extra = null)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Describe a person." }),
            ["response_format"] = new JsonObject
            {
                ["type"] = "json_schema",
                ["json_schema"] = new JsonObject { ["name"] = "person", ["strict"] = true, ["schema"] = JsonNode.Parse(Schema) },
            },
        };
        if (stream)
        {
            body["stream"] = true;
        }
        foreach (var (name, value) in extra is null ? [] : JsonNode.Parse(extra)!.AsObject().ToList())
        {
            body[name] = value?.DeepClone();
        }
        return body;
    }

    private async Task<(HttpStatusCode Status, JsonElement Json, string TraceId)> PostAsync(JsonObject body, string key = GatewayFixture.DevKey)
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(body.ToJsonString(), key));
        return (response.StatusCode, await GatewayApp.ReadJsonAsync(response), response.Headers.GetValues("x-trace-id").Single());
    }

    private static string Content(JsonElement completion) =>
        completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

    private static void AssertValid(string json)
    {
        var check = StructuredOutputKit.Check(Schema, json);
        Assert.True(check.IsValid, string.Join("; ", check.Violations));
        Assert.False(check.Extracted, json);
    }

    private async Task<List<JsonElement>> UpstreamRequestsAsync(string model)
    {
        var all = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", Ct);
        return all.EnumerateArray().Where(r => r.GetProperty("body").TryGetProperty("model", out var m) && m.GetString() == model).ToList();
    }

    [Theory]
    [MemberData(nameof(DefaultAliases))]
    public async Task Each_default_alias_returns_schema_valid_json_and_the_trace_says_valid(string alias)
    {
        var (status, json, traceId) = await PostAsync(Body(alias));

        Assert.Equal(HttpStatusCode.OK, status);
        AssertValid(Content(json));
        Assert.Equal("stop", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var trace = await TraceAsync(traceId);
        Assert.Equal("valid", trace.GetProperty("result").GetString());
        Assert.Equal("json_schema", trace.GetProperty("source").GetString());
        Assert.Equal(64, trace.GetProperty("schema_sha256").GetString()!.Length);
    }

    [Theory]
    [MemberData(nameof(DefaultAliases))]
    public async Task Each_default_alias_streams_schema_valid_json_ending_with_done(string alias)
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(Body(alias, stream: true).ToJsonString()));
        var data = await GatewayApp.ReadSseDataAsync(response);

        Assert.Equal("[DONE]", data[^1]);
        var content = string.Concat(data.SkipLast(1).Select(d => JsonNode.Parse(d)!["choices"]?.AsArray())
            .Where(c => c is { Count: > 0 }).Select(c => c![0]!["delta"]?["content"]?.GetValue<string>()));
        AssertValid(content);
        // Relayed chunk by chunk: the fake streams the instance in several fragments.
        Assert.True(data.Count > 3, string.Join("\n", data));
    }

    [Theory]
    [MemberData(nameof(DefaultAliases))]
    public async Task Every_schema_of_the_corpus_comes_back_valid_through_each_alias(string alias)
    {
        foreach (var row in SchemaCorpusTests.Corpus)
        {
            var (name, schema, _, _, _) = row.Data;
            var body = Body(alias);
            body["response_format"]!["json_schema"]!["schema"] = JsonNode.Parse(schema);

            var (status, json, _) = await PostAsync(body);

            Assert.True(status == HttpStatusCode.OK, $"{name}: {json}");
            var content = Content(json);
            var check = StructuredOutputKit.Check(schema, content);
            Assert.True(check.IsValid, $"{name}: {content}: {string.Join("; ", check.Violations)}");
        }
    }

    [Fact]
    public async Task Each_provider_gets_the_constraint_in_its_own_form_and_no_gateway_only_field()
    {
        var extra = """{"coerce":false,"repair":false}""";
        foreach (var (alias, protocol) in ((string, string)[])[("chat-default", "openai"), ("chat-anthropic", "anthropic"), ("chat-local", "llamacpp")])
        {
            var (status, _, _) = await PostAsync(Body(alias, extra: extra));
            Assert.Equal(HttpStatusCode.OK, status);
            var all = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", Ct);
            var sent = all.EnumerateArray().Last(r => r.GetProperty("protocol").GetString() == protocol).GetProperty("body");
            var body = JsonNode.Parse(sent.GetRawText())!.AsObject();
            Assert.False(body.ContainsKey("coerce"), protocol);
            Assert.False(body.ContainsKey("repair"), protocol);
            Assert.False(body.ContainsKey("response_schema"), protocol);
            if (protocol == "anthropic")
            {
                Assert.False(body.ContainsKey("response_format"));
                var tool = Assert.Single(body["tools"]!.AsArray())!;
                Assert.Equal("person", tool["name"]!.GetValue<string>());
                Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Schema), tool["input_schema"]));
                Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"type":"tool","name":"person"}"""), body["tool_choice"]));
            }
            else
            {
                Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Schema), body["response_format"]!["json_schema"]!["schema"]), protocol);
                Assert.Equal("json_schema", body["response_format"]!["type"]!.GetValue<string>());
            }
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task The_response_schema_extension_is_constrained_and_validated_too(string protocol)
    {
        var body = Body($"schema-wrong-types-{protocol}");
        body.Remove("response_format");
        body["response_schema"] = JsonNode.Parse(Schema);
        body["coerce"] = true;

        var (status, json, traceId) = await PostAsync(body);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"name":"test","age":1,"active":true}"""), JsonNode.Parse(Content(json))), Content(json));
        var trace = await TraceAsync(traceId);
        Assert.Equal("coerced", trace.GetProperty("result").GetString());
        Assert.Equal("response_schema", trace.GetProperty("source").GetString());
        var sent = (await UpstreamRequestsAsync($"schema-wrong-types@{protocol}"))[^1].GetProperty("body");
        Assert.False(sent.TryGetProperty("response_schema", out _));
        Assert.False(sent.TryGetProperty("coerce", out _));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Invalid_json_fails_with_the_openai_envelope_and_the_trace_says_invalid(string protocol)
    {
        var (status, json, traceId) = await PostAsync(Body($"schema-invalid-json-{protocol}"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        var error = json.GetProperty("error");
        Assert.Equal(StructuredOutputErrors.InvalidOutputCode, error.GetProperty("code").GetString());
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.Contains("(root): json: the output is not valid JSON", error.GetProperty("message").GetString());
        var trace = await TraceAsync(traceId);
        Assert.Equal("invalid", trace.GetProperty("result").GetString());
        Assert.Equal("json", trace.GetProperty("errors")[0].GetProperty("keyword").GetString());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Json_in_a_code_fence_is_extracted_and_returned_clean(string protocol)
    {
        var (status, json, traceId) = await PostAsync(Body($"schema-code-fence-{protocol}"));

        Assert.Equal(HttpStatusCode.OK, status);
        AssertValid(Content(json));
        Assert.Equal("extracted", (await TraceAsync(traceId)).GetProperty("result").GetString());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Wrong_types_fail_naming_each_pointer_and_keyword_unless_coerced(string protocol)
    {
        var (status, json, _) = await PostAsync(Body($"schema-wrong-types-{protocol}"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        var message = json.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("/age: type:", message);
        Assert.Contains("/active: type:", message);
        Assert.DoesNotContain("/name", message);

        // Per request...
        var (coercedStatus, coerced, _) = await PostAsync(Body($"schema-wrong-types-{protocol}", extra: """{"coerce":true}"""));
        Assert.Equal(HttpStatusCode.OK, coercedStatus);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"name":"test","age":1,"active":true}"""), JsonNode.Parse(Content(coerced))));

        // ...and per route, which the request can still turn off.
        var (routeStatus, byRoute, _) = await PostAsync(Body($"coercing-{protocol}"));
        Assert.Equal(HttpStatusCode.OK, routeStatus);
        AssertValid(Content(byRoute));
        Assert.Equal(HttpStatusCode.BadGateway, (await PostAsync(Body($"coercing-{protocol}", extra: """{"coerce":false}"""))).Status);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Repair_sends_the_errors_back_and_returns_the_second_answer_with_both_calls_billed(string protocol)
    {
        var (status, json, traceId) = await PostAsync(Body($"schema-invalid-then-valid-{protocol}", extra: """{"repair":true}"""));

        Assert.Equal(HttpStatusCode.OK, status);
        AssertValid(Content(json));
        var calls = await UpstreamRequestsAsync($"schema-invalid-then-valid@{protocol}");
        Assert.Equal(2, calls.Count);
        var repairText = calls[1].GetProperty("body").GetProperty("messages").EnumerateArray().Last().ToString();
        Assert.Contains("required", repairText);
        Assert.Contains("name", repairText);
        // The usage the client sees is both calls'.
        var usage = json.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 2 * 10, usage.ToString());

        var trace = await TraceAsync(traceId);
        Assert.Equal("repaired", trace.GetProperty("result").GetString());
        Assert.Contains(trace.GetProperty("errors").EnumerateArray(), e => e.GetProperty("keyword").GetString() == "required");
        var full = await FullTraceAsync(traceId);
        Assert.Equal(2, full.GetProperty("attempts").GetArrayLength());
        Assert.Equal(2, full.GetProperty("attempts")[1].GetProperty("number").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), full.GetProperty("tokens_in").GetInt32());
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), full.GetProperty("tokens_out").GetInt32());
        // Both calls priced at 1 µ$ per input token and 2 µ$ per output token.
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt64() + 2 * usage.GetProperty("completion_tokens").GetInt64(),
            full.GetProperty("cost_micro_usd").GetInt64());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Without_repair_the_first_invalid_answer_is_the_error_and_the_route_can_enable_repair(string protocol)
    {
        var (status, json, _) = await PostAsync(Body($"norepair-{protocol}", extra: """{"repair":false}"""));
        Assert.Equal(HttpStatusCode.BadGateway, status);
        var message = json.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("(root): required:", message);
        Assert.Contains("name", message);

        var (routeStatus, byRoute, _) = await PostAsync(Body($"repairing-{protocol}"));
        Assert.Equal(HttpStatusCode.OK, routeStatus);
        AssertValid(Content(byRoute));
        Assert.Equal(2, (await UpstreamRequestsAsync($"schema-invalid-then-valid@route-{protocol}")).Count);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_stream_whose_content_fails_ends_with_an_error_event_instead_of_done(string protocol)
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(Body($"schema-wrong-types-{protocol}", stream: true).ToJsonString()));
        var traceId = response.Headers.GetValues("x-trace-id").Single();
        var data = await GatewayApp.ReadSseDataAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("[DONE]", data);
        // The chunks were relayed as they came, then the error.
        Assert.Contains(data, d => d.Contains("\"delta\"", StringComparison.Ordinal));
        var error = JsonNode.Parse(data[^1])!["error"]!;
        Assert.Equal(StructuredOutputErrors.InvalidOutputCode, error["code"]!.GetValue<string>());
        Assert.Contains("/age: type:", error["message"]!.GetValue<string>());
        Assert.Equal("invalid", (await TraceAsync(traceId)).GetProperty("result").GetString());
    }

    [Fact]
    public async Task A_stream_cannot_be_coerced_or_extracted_after_the_fact()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(Body("schema-code-fence-openai", stream: true).ToJsonString()));
        var data = await GatewayApp.ReadSseDataAsync(response);

        Assert.DoesNotContain("[DONE]", data);
        Assert.Contains("code fence or prose", JsonNode.Parse(data[^1])!["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Json_object_mode_needs_an_object()
    {
        foreach (var alias in (string[])["chat-default", "chat-anthropic", "chat-local"])
        {
            var body = Body(alias);
            body["response_format"] = new JsonObject { ["type"] = "json_object" };
            var (status, json, _) = await PostAsync(body);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.IsType<JsonObject>(JsonNode.Parse(Content(json)));
        }
    }

    public static readonly TheoryData<string, string> InvalidSchemas = new()
    {
        { """{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"objekt"}}}}""", "response_format" },
        { """{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/$defs/missing"}}}}""", "response_format" },
        { """{"response_schema":{"type":"object","properties":{"a":{"minLength":"two"}}}}""", "response_schema" },
        { """{"response_schema":{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}}""", "response_schema" },
        { """{"response_schema":{"type":"object"},"coerce":"yes"}""", "coerce" },
        { """{"response_schema":{"type":"object"},"repair":1}""", "repair" },
    };

    [Theory]
    [MemberData(nameof(InvalidSchemas))]
    public async Task An_invalid_schema_is_a_400_before_any_provider_is_called_and_nothing_is_reserved_or_billed(string fields, string param)
    {
        // A first request that is admitted and billed, so the tenant's counters and ledger exist. Its row is waited for
        // (one more than before it), or a slow flush would land it after the count and look like a row the 400 wrote.
        var rowsBeforeValid = await LedgerRowsAsync(expectAtLeast: 0);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(Body("chat-default"), StructuredOutputFixture.BudgetKey)).Status);
        var ledgerBefore = await LedgerRowsAsync(expectAtLeast: rowsBeforeValid + 1);
        var redisBefore = await RedisSnapshotAsync();
        var upstreamBefore = (await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", Ct)).GetProperty("requests").GetInt64();

        var body = Body("chat-default");
        body.Remove("response_format");
        foreach (var (name, value) in JsonNode.Parse(fields)!.AsObject().ToList())
        {
            body[name] = value?.DeepClone();
        }
        var (status, json, _) = await PostAsync(body, StructuredOutputFixture.BudgetKey);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = json.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.StartsWith(param, error.GetProperty("param").GetString());
        await Task.Delay(300, Ct); // two ledger flush intervals: a row, had one been written, would be there
        Assert.Equal(upstreamBefore, (await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", Ct)).GetProperty("requests").GetInt64());
        Assert.Equal(redisBefore, await RedisSnapshotAsync());
        Assert.Equal(ledgerBefore, await LedgerRowsAsync(expectAtLeast: 1));
    }

    [Fact]
    public async Task A_schema_is_compiled_once_however_often_and_in_whatever_key_order_it_is_sent()
    {
        var cache = fx.Gateway.Services.GetRequiredService<SchemaCache>();
        var schema = JsonNode.Parse("""{"type":"object","properties":{"q":{"type":"string"}},"required":["q"],"title":"compile-once"}""")!;
        var reordered = JsonNode.Parse("""{"title":"compile-once","required":["q"],"properties":{"q":{"type":"string"}},"type":"object"}""")!;
        var before = cache.Compilations;

        foreach (var (alias, variant) in ((string, JsonNode)[])[("chat-default", schema), ("chat-anthropic", reordered), ("chat-local", schema)])
        {
            var body = Body(alias);
            body["response_format"]!["json_schema"]!["schema"] = variant.DeepClone();
            Assert.Equal(HttpStatusCode.OK, (await PostAsync(body)).Status);
        }

        Assert.Equal(before + 1, cache.Compilations);
    }

    [Fact]
    public async Task An_invalid_schema_message_is_precise()
    {
        var body = Body("chat-default");
        body["response_format"]!["json_schema"]!["schema"] = JsonNode.Parse("""{"type":"object","properties":{"a":{"$ref":"#/$defs/nope"}}}""");

        var (status, json, _) = await PostAsync(body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_json_schema", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("#/$defs/nope", json.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_request_that_may_be_repaired_is_priced_as_two_calls()
    {
        var one = Body("chat-default", extra: """{"max_tokens":1000}""");
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(one, StructuredOutputFixture.TightKey)).Status);

        var (status, json, _) = await PostAsync(Body("chat-default", extra: """{"max_tokens":1000,"repair":true}"""), StructuredOutputFixture.TightKey);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("request_cost_limit_exceeded", json.GetProperty("error").GetProperty("code").GetString());

        // A stream cannot be repaired, so it is priced as one call.
        using var stream = await fx.Gateway.SendAsync(GatewayApp.Chat(
            Body("chat-default", stream: true, extra: """{"max_tokens":1000,"repair":true}""").ToJsonString(), StructuredOutputFixture.TightKey));
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
    }

    private async Task<JsonElement> FullTraceAsync(string traceId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/traces/{traceId}");
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayFixture.AdminKey);
            using var response = await fx.Gateway.Client.SendAsync(request, Ct);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
            }
            Assert.True(DateTime.UtcNow < deadline, $"trace {traceId} not recorded: {response.StatusCode}");
            await Task.Delay(200, Ct);
        }
    }

    private async Task<JsonElement> TraceAsync(string traceId)
    {
        var structured = (await FullTraceAsync(traceId)).GetProperty("structured_output");
        Assert.Equal(JsonValueKind.Object, structured.ValueKind);
        return structured;
    }

    private Task<long> LedgerRowsAsync(long expectAtLeast) => TenantFootprint.LedgerRowsAsync(fx.PostgresConnectionString, "so", expectAtLeast);

    private Task<string> RedisSnapshotAsync() => TenantFootprint.RedisTextAsync(fx.Redis.ConnectionString, "so");
}
