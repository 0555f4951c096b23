namespace ModelGateway.Policy.Rules.Client;

/// <summary>How the Api authenticates to the Policy service.</summary>
public static class PolicyServiceAuth
{
    /// <summary>Header carrying the shared service key (config <c>Policy:ServiceKey</c> in the service).</summary>
    public const string ServiceKeyHeader = "x-policy-key";

    /// <summary>The service key both sides default to in the Development environment only.</summary>
    public const string DevelopmentServiceKey = "sk-policy-local";
}
