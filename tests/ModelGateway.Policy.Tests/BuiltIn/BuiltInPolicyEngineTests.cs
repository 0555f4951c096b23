using System.Text.Json;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.BuiltIn;
using ModelGateway.Policy.Tests.Support;

namespace ModelGateway.Policy.Tests.BuiltIn;

public sealed class BuiltInPolicyEngineTests
{
    private readonly BuiltInPolicyEngine _engine = new();

    [Theory]
    [MemberData(nameof(PolicyCases.Names), MemberType = typeof(PolicyCases))]
    public void Every_rule_allows_and_denies_as_specified(string name)
    {
        var c = PolicyCases.Named(name);

        var decision = _engine.Decide(c.Input, c.Policy);

        Assert.Equal(c.Allow, decision.Allow);
        Assert.Equal(c.Reasons, decision.Reasons);
        Assert.Equal(c.MaxOutputTokens, decision.MaxOutputTokens);
        Assert.Equal(PolicyEngineNames.BuiltIn, decision.Engine);
        Assert.False(string.IsNullOrEmpty(decision.DecisionId));
        Assert.False(decision.FailOpen);
    }

    [Fact]
    public void Reasons_are_sorted_ordinally()
    {
        var c = PolicyCases.Named("every reason, sorted");
        var decision = _engine.Decide(c.Input, c.Policy);
        Assert.Equal(decision.Reasons.Order(StringComparer.Ordinal), decision.Reasons);
    }

    [Fact]
    public void Pattern_the_non_backtracking_engine_cannot_run_denies_like_an_invalid_one()
    {
        // Backreferences exist in neither RE2 nor .NET's non-backtracking engine: treated as invalid in both.
        var decision = _engine.Decide(Inputs.Request(text: "aa"), new TenantPolicy { DenyPatterns = ["(a)\\1"] });
        Assert.False(decision.Allow);
        Assert.Equal([PolicyReasons.PatternInvalid(1)], decision.Reasons);
    }

    [Fact]
    public void Catastrophic_pattern_stays_linear()
    {
        // Exponential for a backtracking engine; linear for the non-backtracking one.
        var text = new string('a', 50_000) + "!";
        var decision = _engine.Decide(Inputs.Request(text: text), new TenantPolicy { DenyPatterns = ["^(a+)+$"] });
        Assert.True(decision.Allow);
    }

    [Fact]
    public void Validate_reports_what_would_deny_everything()
    {
        var policy = new TenantPolicy
        {
            TimeZone = "Nowhere/Land",
            TimeWindows = [new() { Days = ["someday"], Start = "9", End = "25:00" }],
            DenyPatterns = ["ok", "(bad"],
            MaxOutputTokens = 0,
            MaxUsdPerRequest = -1,
        };

        var problems = policy.Validate();

        Assert.Contains("time zone 'Nowhere/Land' is unknown", problems);
        Assert.Contains("time window #1 names an unknown day 'someday'", problems);
        Assert.Contains("time window #1 needs HH:MM bounds", problems);
        Assert.Contains("deny pattern #2 is invalid", problems);
        Assert.Contains("max_output_tokens must be positive", problems);
        Assert.Contains("max_usd_per_request must not be negative", problems);
        Assert.Empty(new TenantPolicy { TimeZone = "Europe/Paris", TimeWindows = [new() { Start = "9:00", End = "24:00" }], DenyPatterns = ["(?i)x"] }.Validate());
    }

    [Fact]
    public void Allowed_decision_allocates_little()
    {
        var policy = new TenantPolicy
        {
            AllowedModels = ["chat-*"],
            DeniedProviders = ["anthropic"],
            TimeZone = "Europe/Paris",
            TimeWindows = [new() { Start = "00:00", End = "24:00" }],
            DenyPatterns = ["(?i)secret"],
            MaxUsdPerRequest = 1m,
            MaxOutputTokens = 10_000,
        };
        var input = Inputs.Request(text: "a perfectly ordinary prompt about the weather");
        for (var i = 0; i < 10; i++)
        {
            _engine.Decide(input, policy); // compile the policy and warm the regex
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        const int Rounds = 1000;
        for (var i = 0; i < Rounds; i++)
        {
            Assert.True(_engine.Decide(input, policy).Allow);
        }

        var perDecision = (GC.GetAllocatedBytesForCurrentThread() - before) / Rounds;
        // The decision record and its id string; no per-request compilation, lists or LINQ.
        Assert.True(perDecision < 400, $"{perDecision} bytes per allowed decision");
    }

    [Fact]
    public void Contract_is_snake_case_with_engine_names()
    {
        var request = new PolicyDecisionRequest
        {
            Input = Inputs.Request(text: "hi"),
            Policy = new TenantPolicy { Engine = PolicyEngineKind.Opa, FailOpen = true, AllowedModels = ["a"], TimeWindows = [new() { Start = "09:00", End = "17:00" }], MaxUsdPerRequest = 0.5m },
        };

        var json = JsonSerializer.Serialize(request, PolicyJsonContext.Default.PolicyDecisionRequest);
        using var doc = JsonDocument.Parse(json);
        var input = doc.RootElement.GetProperty("input");
        var policy = doc.RootElement.GetProperty("policy");

        Assert.Equal("acme", input.GetProperty("tenant").GetString());
        Assert.Equal("key-1", input.GetProperty("key_id").GetString());
        Assert.Equal(12, input.GetProperty("estimated_input_tokens").GetInt32());
        Assert.Equal(256, input.GetProperty("max_output_tokens").GetInt32());
        Assert.Equal(0.01m, input.GetProperty("estimated_cost_usd").GetDecimal());
        Assert.False(input.GetProperty("has_tools").GetBoolean());
        Assert.Equal("2025-06-02T10:00:00+00:00", input.GetProperty("time").GetString());
        Assert.False(input.TryGetProperty("response_format", out _)); // nulls are omitted
        Assert.Equal("opa", policy.GetProperty("engine").GetString());
        Assert.True(policy.GetProperty("fail_open").GetBoolean());
        Assert.Equal("09:00", policy.GetProperty("time_windows")[0].GetProperty("start").GetString());
        Assert.False(policy.TryGetProperty("inspects_text", out _));

        var back = JsonSerializer.Deserialize("""{"engine":"built-in","allowed_models":["x"]}""", PolicyJsonContext.Default.TenantPolicy)!;
        Assert.Equal(PolicyEngineKind.BuiltIn, back.Engine);
        Assert.Equal(["x"], back.AllowedModels!);
    }

    [Fact]
    public void Decision_serialises_without_fail_open_unless_set()
    {
        var allowed = _engine.Decide(Inputs.Request(), new TenantPolicy());
        var json = JsonSerializer.Serialize(allowed, PolicyJsonContext.Default.PolicyDecision);
        Assert.Contains("\"allow\":true", json);
        Assert.Contains("\"reasons\":[]", json);
        Assert.Contains("\"engine\":\"built-in\"", json);
        Assert.DoesNotContain("fail_open", json);
        Assert.DoesNotContain("max_output_tokens", json);
    }
}
