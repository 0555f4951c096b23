using System.ComponentModel.DataAnnotations;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Configuration;

/// <summary>
/// Providers and routes (section <c>Gateway</c>). Validated at start-up: a route naming an unknown provider,
/// a provider of an unknown type or a target without a model stops the service with a message naming each.
/// </summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Upstream providers by name.</summary>
    public Dictionary<string, ProviderOptions> Providers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Public model aliases by name.</summary>
    public Dictionary<string, RouteOptions> Routes { get; set; } = new(StringComparer.Ordinal);

    public RoutingOptions Routing { get; set; } = new();

    /// <summary>Telemetry choices that are the gateway's, not the OpenTelemetry SDK's.</summary>
    public TelemetryOptions Telemetry { get; set; } = new();

    /// <summary>Largest accepted request body in bytes (default 1 MiB, as the original gateway).</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest non-streaming upstream response the gateway accepts, in bytes (default 16 MiB).</summary>
    [Range(1024, int.MaxValue)]
    public int MaxResponseBytes { get; set; } = 16 * 1024 * 1024;
}

public sealed class ProviderOptions
{
    /// <summary><c>openai_compatible</c>, <c>anthropic</c> or <c>llamacpp</c>.</summary>
    [Required]
    public string Type { get; set; } = ProviderTypes.OpenAICompatible;

    /// <summary>Base URL, e.g. <c>https://openrouter.ai/api/v1</c>, <c>https://api.anthropic.com</c>, <c>http://localhost:8081</c>.</summary>
    [Required]
    public string BaseUrl { get; set; } = "";

    /// <summary>The provider API key; set it from the environment or a secret, never in a file in the repository.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Time allowed to connect and receive the response headers (default 30 s). After that the router tries the next target.</summary>
    public TimeSpan FirstByteTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest silence allowed between two stream events, or for a whole non-streaming body (default 120 s).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Extra headers sent on every request (e.g. OpenRouter's <c>HTTP-Referer</c>).</summary>
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

public sealed class RouteOptions
{
    /// <summary>Where the alias goes; one is chosen by weight, the others are tried if it fails before the first byte.</summary>
    public List<TargetOptions> Targets { get; set; } = [];

    /// <summary>Aliases tried, in order, after every target of this one has failed.</summary>
    public List<string> Fallbacks { get; set; } = [];

    /// <summary>Output cap used when the client sets none (and the value sent to Anthropic, where it is required). Default 1024.</summary>
    [Range(1, 10_000_000)]
    public int DefaultMaxTokens { get; set; } = 1024;

    /// <summary>Structured-output defaults for this alias; unset values fall back to the <c>StructuredOutput</c> section.</summary>
    public RouteStructuredOutputOptions StructuredOutput { get; set; } = new();
}

/// <summary><c>Gateway:Routes:&lt;alias&gt;:StructuredOutput</c>: per-route defaults a request's own <c>repair</c>/<c>coerce</c> override.</summary>
public sealed class RouteStructuredOutputOptions
{
    /// <summary>One repair attempt when the output fails its schema. Null (default): the gateway-wide setting.</summary>
    public bool? Repair { get; set; }

    /// <summary>Ajv-style scalar coercion before validation. Null (default): the gateway-wide setting.</summary>
    public bool? Coerce { get; set; }
}

public sealed class TargetOptions
{
    [Required]
    public string Provider { get; set; } = "";

    /// <summary>The upstream model name sent to the provider.</summary>
    [Required]
    public string Model { get; set; } = "";

    [Range(0, 1_000_000)]
    public int Weight { get; set; } = 1;

    /// <summary>USD per million input tokens.</summary>
    [Range(0, 1_000_000)]
    public decimal InputPerMillion { get; set; }

    /// <summary>USD per million output tokens.</summary>
    [Range(0, 1_000_000)]
    public decimal OutputPerMillion { get; set; }

    /// <summary>USD per million cached input tokens (defaults to the input price when unset).</summary>
    [Range(0, 1_000_000)]
    public decimal? CachedInputPerMillion { get; set; }

    /// <summary>The original gateway's price unit (USD per 1k tokens); when set it wins over <see cref="InputPerMillion"/>.</summary>
    public decimal? CostPer1kInput { get; set; }

    /// <summary>The original gateway's price unit (USD per 1k tokens); when set it wins over <see cref="OutputPerMillion"/>.</summary>
    public decimal? CostPer1kOutput { get; set; }
}

public sealed class RoutingOptions
{
    /// <summary>Upstream attempts per request at most, across targets and fallbacks (default 4).</summary>
    [Range(1, 20)]
    public int MaxAttempts { get; set; } = 4;

    /// <summary>Pause before the second attempt; doubled for each further one (default 50 ms).</summary>
    public TimeSpan Backoff { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Consecutive failures after which a target is cooled down (default 3).</summary>
    [Range(1, 1000)]
    public int CooldownAfterFailures { get; set; } = 3;

    /// <summary>How long a failing target is skipped (default 30 s).</summary>
    public TimeSpan Cooldown { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest <c>retry-after</c> the gateway waits out itself when no other target remains (default 2 s); longer ones are returned to the client.</summary>
    public TimeSpan MaxRetryAfterWait { get; set; } = TimeSpan.FromSeconds(2);
}

public sealed class TelemetryOptions
{
    /// <summary>
    /// Record prompts and completions on the upstream attempt spans as the GenAI conventions' opt-in
    /// <c>gen_ai.client.inference.operation.details</c> event (default false: content is personal data and often secret).
    /// Also turned on by <c>OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true</c>, the variable other GenAI instrumentations read.
    /// </summary>
    public bool CaptureContent { get; set; }
}
