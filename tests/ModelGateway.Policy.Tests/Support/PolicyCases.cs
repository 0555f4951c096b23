using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.BuiltIn;

namespace ModelGateway.Policy.Tests.Support;

/// <summary>
/// Every rule, allow and deny, with the decision both engines must give. The built-in tests run them in
/// process; RealOpaTests runs the same cases through OPA and policies/gateway.rego.
/// </summary>
public static class PolicyCases
{
    public sealed record Case(string Name, PolicyInput Input, TenantPolicy Policy, bool Allow, string[] Reasons, int? MaxOutputTokens = null)
    {
        public override string ToString() => Name;
    }

    private static readonly PolicyTimeWindow OfficeHours = new() { Days = ["mon", "TUE", "wed", "thu", "fri"], Start = "09:00", End = "18:00" };

    public static IEnumerable<Case> All()
    {
        yield return new("empty policy allows", Inputs.Request(), new TenantPolicy(), true, []);

        // Allowed / denied models.
        yield return new("allowed model exact", Inputs.Request(), new() { AllowedModels = ["chat-default"] }, true, []);
        yield return new("allowed model by prefix", Inputs.Request(model: "chat-local"), new() { AllowedModels = ["chat-*"] }, true, []);
        yield return new("model not allowed", Inputs.Request(model: "gpt-4o"), new() { AllowedModels = ["chat-*"] }, false, [PolicyReasons.ModelNotAllowed("gpt-4o")]);
        yield return new("allowed models are case-sensitive", Inputs.Request(model: "Chat-default"), new() { AllowedModels = ["chat-default"] }, false, [PolicyReasons.ModelNotAllowed("Chat-default")]);
        yield return new("model denied", Inputs.Request(model: "chat-anthropic"), new() { DeniedModels = ["chat-anthropic"] }, false, [PolicyReasons.ModelDenied("chat-anthropic")]);
        yield return new("model not denied", Inputs.Request(), new() { DeniedModels = ["chat-anthropic"] }, true, []);
        yield return new("denied wins over allowed", Inputs.Request(model: "chat-anthropic"), new() { AllowedModels = ["*"], DeniedModels = ["chat-anth*"] }, false, [PolicyReasons.ModelDenied("chat-anthropic")]);

        // Allowed / denied providers.
        yield return new("provider allowed", Inputs.Request(provider: "llamacpp"), new() { AllowedProviders = ["llamacpp", "openai"] }, true, []);
        yield return new("provider not allowed", Inputs.Request(provider: "anthropic"), new() { AllowedProviders = ["openai"] }, false, [PolicyReasons.ProviderNotAllowed("anthropic")]);
        yield return new("provider denied", Inputs.Request(provider: "anthropic"), new() { DeniedProviders = ["anthropic"] }, false, [PolicyReasons.ProviderDenied("anthropic")]);
        yield return new("provider not denied", Inputs.Request(provider: "openai"), new() { DeniedProviders = ["anthropic"] }, true, []);
        yield return new("provider missing with provider rules", Inputs.Request(provider: null), new() { DeniedProviders = ["anthropic"] }, false, [PolicyReasons.ProviderMissing]);
        yield return new("provider missing without provider rules", Inputs.Request(provider: null), new(), true, []);

        // Time-of-day windows (10:00 UTC Monday = 12:00 in Paris, summer time).
        yield return new("inside office hours", Inputs.Request(), new() { TimeWindows = [OfficeHours] }, true, []);
        yield return new("before office hours", Inputs.Request(time: Inputs.Monday10Utc.AddHours(-2)), new() { TimeWindows = [OfficeHours] }, false, [PolicyReasons.OutsideTimeWindows]);
        yield return new("end is exclusive", Inputs.Request(time: Inputs.Monday10Utc.AddHours(8)), new() { TimeWindows = [OfficeHours] }, false, [PolicyReasons.OutsideTimeWindows]);
        yield return new("weekend outside office days", Inputs.Request(time: Inputs.Monday10Utc.AddDays(-1)), new() { TimeWindows = [OfficeHours] }, false, [PolicyReasons.OutsideTimeWindows]);
        yield return new("window in the tenant's time zone", Inputs.Request(time: Inputs.Monday10Utc.AddHours(6)), new() { TimeZone = "Europe/Paris", TimeWindows = [OfficeHours] }, false, [PolicyReasons.OutsideTimeWindows]);
        yield return new("window in the tenant's time zone, inside", Inputs.Request(time: Inputs.Monday10Utc.AddHours(5)), new() { TimeZone = "Europe/Paris", TimeWindows = [OfficeHours] }, true, []);
        yield return new("window wrapping past midnight, after start", Inputs.Request(time: Inputs.Monday10Utc.AddHours(13)), new() { TimeWindows = [new() { Start = "22:00", End = "06:00" }] }, true, []);
        yield return new("window wrapping past midnight, before end", Inputs.Request(time: Inputs.Monday10Utc.AddHours(-5)), new() { TimeWindows = [new() { Start = "22:00", End = "06:00" }] }, true, []);
        yield return new("window wrapping past midnight, outside", Inputs.Request(), new() { TimeWindows = [new() { Start = "22:00", End = "06:00" }] }, false, [PolicyReasons.OutsideTimeWindows]);
        yield return new("second window matches", Inputs.Request(), new() { TimeWindows = [new() { Start = "00:00", End = "01:00" }, new() { Start = "09:30", End = "24:00" }] }, true, []);
        yield return new("unknown time zone denies", Inputs.Request(), new() { TimeZone = "Mars/Olympus", TimeWindows = [OfficeHours] }, false, [PolicyReasons.OutsideTimeWindows]);

        // Deny patterns on the request text.
        yield return new("text matches deny pattern", Inputs.Request(text: "please print the SECRET key"), new() { DenyPatterns = ["(?i)secret\\s+key"] }, false, [PolicyReasons.PatternMatched(1)]);
        yield return new("text does not match", Inputs.Request(text: "hello"), new() { DenyPatterns = ["(?i)secret\\s+key"] }, true, []);
        yield return new("second pattern matches", Inputs.Request(text: "card 4111 1111 1111 1111"), new() { DenyPatterns = ["password", "[0-9]{4}( [0-9]{4}){3}"] }, false, [PolicyReasons.PatternMatched(2)]);
        yield return new("text missing with patterns", Inputs.Request(text: null), new() { DenyPatterns = ["password"] }, false, [PolicyReasons.TextMissing]);
        yield return new("invalid pattern denies", Inputs.Request(text: "hello"), new() { DenyPatterns = ["(unclosed"] }, false, [PolicyReasons.PatternInvalid(1)]);

        // Cost per request.
        yield return new("cost at the cap", Inputs.Request(cost: 0.05m), new() { MaxUsdPerRequest = 0.05m }, true, []);
        yield return new("cost above the cap", Inputs.Request(cost: 0.0501m), new() { MaxUsdPerRequest = 0.05m }, false, [PolicyReasons.CostExceeded]);

        // The output-token cap lowers, never denies.
        yield return new("token cap lowers a larger request", Inputs.Request(maxOutputTokens: 4096), new() { MaxOutputTokens = 1024 }, true, [], 1024);
        yield return new("token cap applies to an unlimited request", Inputs.Request(maxOutputTokens: null), new() { MaxOutputTokens = 1024 }, true, [], 1024);
        yield return new("token cap keeps a smaller request", Inputs.Request(maxOutputTokens: 100), new() { MaxOutputTokens = 1024 }, true, []);
        yield return new("token cap keeps an equal request", Inputs.Request(maxOutputTokens: 1024), new() { MaxOutputTokens = 1024 }, true, []);

        // Several failing rules: every reason, sorted.
        yield return new("every reason, sorted", Inputs.Request(model: "gpt-4o", provider: "anthropic", cost: 1m, text: "secret", maxOutputTokens: 9000),
            new() { AllowedModels = ["chat-*"], DeniedProviders = ["anthropic"], DenyPatterns = ["secret"], MaxUsdPerRequest = 0.5m, MaxOutputTokens = 100 },
            false,
            [PolicyReasons.CostExceeded, PolicyReasons.ModelNotAllowed("gpt-4o"), PolicyReasons.ProviderDenied("anthropic"), PolicyReasons.PatternMatched(1)],
            100);
    }

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var c in All())
        {
            data.Add(c.Name);
        }

        return data;
    }

    public static Case Named(string name) => All().Single(c => c.Name == name);
}
