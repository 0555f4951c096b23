using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>
/// A generated corpus of mutated valid requests (seeded, so a failure reproduces): whatever the body, the gateway never
/// answers 5xx and never crashes, every refusal is in the OpenAI envelope, and a refused request never reaches the
/// provider (so nothing is reserved, billed or counted for it).
/// </summary>
public sealed class RequestFuzzTests(GatewayFixture fx) : IClassFixture<GatewayFixture>
{
    private const int Cases = 2000;

    private static readonly string[] Seeds =
    [
        """{"model":"chat-default","messages":[{"role":"user","content":"hi"}]}""",
        """{"model":"chat-default","stream":true,"stream_options":{"include_usage":true},"max_tokens":16,"temperature":0.2,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}""",
        """{"model":"chat-anthropic","stop":["x"],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}""",
        """{"model":"chat-local","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}],"messages":[{"role":"user","content":"call f"}]}""",
        """{"model":"chat-default","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}]}""",
    ];

    [Fact]
    public async Task Thousands_of_mutated_requests_never_cause_a_5xx_and_refusals_never_reach_the_provider()
    {
        var random = new Random(20261127);
        var ct = TestContext.Current.CancellationToken;
        var statuses = new Dictionary<int, int>();
        for (var i = 0; i < Cases; i++)
        {
            var body = Mutate(Seeds[random.Next(Seeds.Length)], random);
            var before = await UpstreamRequestsAsync();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayFixture.DevKey);
            using var response = await fx.Gateway.Client.SendAsync(request, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            var shown = Encoding.UTF8.GetString(body);
            Assert.True(status < 500, $"case {i}: HTTP {status} for {shown[..Math.Min(300, shown.Length)]}: {text}");
            if (status >= 400)
            {
                var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
                Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()), $"case {i}: empty message");
                Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
                Assert.Equal(before, await UpstreamRequestsAsync());
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{Cases} mutated requests: " + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"HTTP {kv.Key} ×{kv.Value}")));
        // The corpus must exercise both sides, or it proves nothing.
        Assert.True(statuses.GetValueOrDefault(200) > Cases / 20, string.Join(", ", statuses.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.True(statuses.Where(kv => kv.Key >= 400).Sum(kv => kv.Value) > Cases / 4, string.Join(", ", statuses.Select(kv => $"{kv.Key}: {kv.Value}")));
    }

    private static byte[] Mutate(string seed, Random random)
    {
        var node = JsonNode.Parse(seed)!;
        var mutations = random.Next(0, 4);
        for (var m = 0; m < mutations; m++)
        {
            MutateNode(node, random);
        }
        var bytes = Encoding.UTF8.GetBytes(node.ToJsonString());
        return random.Next(10) switch
        {
            0 => bytes[..random.Next(bytes.Length)], // truncated
            1 => [.. bytes[..(bytes.Length / 2)], 0xC3, 0x28, .. bytes[(bytes.Length / 2)..]], // invalid UTF-8
            2 => Encoding.UTF8.GetBytes(new string('[', random.Next(60, 400)) + "1" + new string(']', random.Next(60, 400))), // deep nesting
            _ => bytes,
        };
    }

    private static readonly Func<Random, JsonNode?>[] Values =
    [
        _ => null,
        _ => JsonValue.Create(-1),
        _ => JsonValue.Create(0),
        _ => JsonValue.Create(1e308),
        _ => JsonValue.Create(long.MaxValue),
        _ => JsonValue.Create(3.5),
        _ => JsonValue.Create(true),
        _ => JsonValue.Create(""),
        r => JsonValue.Create(new string('x', r.Next(1, 5000))),
        _ => JsonValue.Create("\u0000\uFFFF"),
        _ => new JsonArray(),
        _ => new JsonObject(),
        _ => new JsonArray(JsonValue.Create("a"), JsonValue.Create(1)),
        _ => new JsonObject { ["role"] = "user", ["content"] = "hi" },
        _ => JsonValue.Create("no-such-model"),
        _ => JsonValue.Create("user"),
    ];

    private static void MutateNode(JsonNode root, Random random)
    {
        // Pick a random container in the tree and change, drop or add one of its members.
        var containers = new List<JsonNode>();
        Collect(root, containers);
        var target = containers[random.Next(containers.Count)];
        switch (target)
        {
            case JsonObject o when o.Count > 0:
                var key = o.ElementAt(random.Next(o.Count)).Key;
                switch (random.Next(3))
                {
                    case 0: o.Remove(key); break;
                    case 1: o[key] = Values[random.Next(Values.Length)](random); break;
                    default: o["x_" + random.Next(100)] = Values[random.Next(Values.Length)](random); break;
                }
                break;
            case JsonArray a when a.Count > 0:
                var index = random.Next(a.Count);
                if (random.Next(2) == 0)
                {
                    a.RemoveAt(index);
                }
                else
                {
                    a[index] = Values[random.Next(Values.Length)](random);
                }
                break;
            case JsonArray a:
                a.Add(Values[random.Next(Values.Length)](random));
                break;
        }
    }

    private static void Collect(JsonNode? node, List<JsonNode> into)
    {
        switch (node)
        {
            case JsonObject o:
                into.Add(o);
                foreach (var (_, v) in o)
                {
                    Collect(v, into);
                }
                break;
            case JsonArray a:
                into.Add(a);
                foreach (var v in a)
                {
                    Collect(v, into);
                }
                break;
        }
    }

    private async Task<int> UpstreamRequestsAsync()
    {
        var stats = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", TestContext.Current.CancellationToken);
        return stats.GetProperty("requests").GetInt32();
    }
}
