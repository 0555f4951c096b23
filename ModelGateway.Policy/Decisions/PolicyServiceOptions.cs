using Microsoft.Extensions.Options;

namespace ModelGateway.Policy.Decisions;

/// <summary>The Policy service's keys (section <c>Policy</c>).</summary>
internal sealed class PolicyServiceOptions
{
    public const string SectionName = "Policy";

    /// <summary>The gateway's admin key: required for <c>/api/opa/decide</c>, also accepted on <c>/api/policy/decide</c>.
    /// Required; defaults to <c>sk-admin-local</c> in Development only.</summary>
    public string? AdminKey { get; set; }

    /// <summary>Shared service-to-service key the Api sends as <c>x-policy-key</c>. Required; defaults to
    /// <c>sk-policy-local</c> in Development only.</summary>
    public string? ServiceKey { get; set; }

    internal const string DevelopmentAdminKey = "sk-admin-local";
}

internal sealed class PolicyServiceOptionsValidator : IValidateOptions<PolicyServiceOptions>
{
    public ValidateOptionsResult Validate(string? name, PolicyServiceOptions options)
    {
        List<string>? errors = null;
        if (string.IsNullOrWhiteSpace(options.AdminKey))
        {
            (errors ??= []).Add("Policy:AdminKey is required outside Development (the gateway's admin key).");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceKey))
        {
            (errors ??= []).Add("Policy:ServiceKey is required outside Development (the key the Api sends as x-policy-key).");
        }

        return errors is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
