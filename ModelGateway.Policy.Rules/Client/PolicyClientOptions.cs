using Microsoft.Extensions.Options;

namespace ModelGateway.Policy.Rules.Client;

/// <summary>How the Api reaches the Policy service (section <c>PolicyClient</c>).</summary>
public sealed class PolicyClientOptions
{
    public const string SectionName = "PolicyClient";

    /// <summary>
    /// Base address of the Policy service. Default <c>https+http://policy</c>: the Aspire resource named
    /// <c>policy</c>, resolved by service discovery.
    /// </summary>
    public Uri BaseAddress { get; set; } = new("https+http://policy");

    /// <summary>
    /// Shared key sent as <c>x-policy-key</c>; must equal the service's <c>Policy:ServiceKey</c>. Required;
    /// defaults to <see cref="PolicyServiceAuth.DevelopmentServiceKey"/> in Development only.
    /// </summary>
    public string? ServiceKey { get; set; }

    /// <summary>
    /// Whole-call budget, default 1 s: the service's own OPA timeout (250 ms) plus the hop. A call that takes
    /// longer fails closed (or open, per tenant).
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class PolicyClientOptionsValidator : IValidateOptions<PolicyClientOptions>
{
    public ValidateOptionsResult Validate(string? name, PolicyClientOptions options)
    {
        List<string>? errors = null;
        if (!options.BaseAddress.IsAbsoluteUri)
        {
            (errors ??= []).Add($"{PolicyClientOptions.SectionName}:BaseAddress must be an absolute URI.");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceKey))
        {
            (errors ??= []).Add($"{PolicyClientOptions.SectionName}:ServiceKey is required (the Policy service's Policy:ServiceKey).");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromSeconds(30))
        {
            (errors ??= []).Add($"{PolicyClientOptions.SectionName}:Timeout must be between 0 and 30 seconds.");
        }

        return errors is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
