using Microsoft.Extensions.Options;

namespace ModelGateway.Policy.Opa;

/// <summary>The OPA sidecar (section <c>Policy:Opa</c>). Without <see cref="Url"/> the service decides with the built-in engine.</summary>
internal sealed class OpaOptions
{
    public const string SectionName = "Policy:Opa";

    /// <summary>OPA's base address, e.g. <c>http://opa:8181</c>. Empty: OPA is not used.</summary>
    public Uri? Url { get; set; }

    /// <summary>The rule queried through the Data API, <c>POST /v1/data/{path}</c>. Default <c>gateway/decision</c>
    /// (package <c>gateway</c>, rule <c>decision</c> of policies/gateway.rego).</summary>
    public string DecisionPath { get; set; } = "gateway/decision";

    /// <summary>Budget for one OPA call, default 250 ms: a decision sits on every OPA tenant's request path.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a decision is reused for the same relevant input, default 5 s (0 disables the cache).</summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>At most this many cached decisions, default 1024.</summary>
    public int CacheSize { get; set; } = 1024;

    /// <summary>Budget for OPA's <c>GET /health</c> in the health check, default 1 s.</summary>
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(1);

    public bool IsConfigured => Url is not null;
}

internal sealed class OpaOptionsValidator : IValidateOptions<OpaOptions>
{
    public ValidateOptionsResult Validate(string? name, OpaOptions options)
    {
        List<string>? errors = null;
        if (options.Url is { } url && (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)))
        {
            (errors ??= []).Add("Policy:Opa:Url must be an absolute http(s) URI.");
        }

        var path = options.DecisionPath;
        if (string.IsNullOrEmpty(path) || path.StartsWith('/') || path.EndsWith('/')
            || !path.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '/'))
        {
            (errors ??= []).Add("Policy:Opa:DecisionPath must be a slash-separated rule path such as gateway/decision.");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromSeconds(10))
        {
            (errors ??= []).Add("Policy:Opa:Timeout must be between 0 and 10 seconds.");
        }

        if (options.HealthTimeout <= TimeSpan.Zero || options.HealthTimeout > TimeSpan.FromSeconds(30))
        {
            (errors ??= []).Add("Policy:Opa:HealthTimeout must be between 0 and 30 seconds.");
        }

        if (options.CacheTtl < TimeSpan.Zero || options.CacheTtl > TimeSpan.FromMinutes(1))
        {
            (errors ??= []).Add("Policy:Opa:CacheTtl must be between 0 and 60 seconds.");
        }

        if (options.CacheSize is < 1 or > 100_000)
        {
            (errors ??= []).Add("Policy:Opa:CacheSize must be between 1 and 100000.");
        }

        return errors is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
