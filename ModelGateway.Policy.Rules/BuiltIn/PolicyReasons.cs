using System.Globalization;

namespace ModelGateway.Policy.Rules.BuiltIn;

/// <summary>
/// The deny reasons, word for word the ones <c>policies/gateway.rego</c> produces, so a tenant sees the same
/// explanation whichever engine decided.
/// </summary>
public static class PolicyReasons
{
    public const string ProviderMissing = "provider is required by the tenant's provider rules but was not given";
    public const string OutsideTimeWindows = "request time is outside the tenant's allowed time windows";
    public const string TextMissing = "request text is required by the tenant's deny patterns but was not given";
    public const string CostExceeded = "estimated cost exceeds the tenant's maximum per request";

    public static string ModelNotAllowed(string model) => $"model '{model}' is not in the tenant's allowed models";

    public static string ModelDenied(string model) => $"model '{model}' is denied for this tenant";

    public static string ProviderNotAllowed(string provider) => $"provider '{provider}' is not in the tenant's allowed providers";

    public static string ProviderDenied(string provider) => $"provider '{provider}' is denied for this tenant";

    public static string PatternMatched(int number) => string.Create(CultureInfo.InvariantCulture, $"request text matches deny pattern #{number}");

    public static string PatternInvalid(int number) => string.Create(CultureInfo.InvariantCulture, $"deny pattern #{number} is invalid");

    /// <summary>Built-in engine only: RE2 in OPA has no timeout to hit.</summary>
    public static string PatternTimedOut(int number) => string.Create(CultureInfo.InvariantCulture, $"deny pattern #{number} could not be evaluated in time");
}
