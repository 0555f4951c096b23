namespace ModelGateway.Api.Providers;

/// <summary>
/// One provider wire protocol. An adapter turns the gateway's chat request (OpenAI shape) into the
/// provider's request and the provider's responses, stream events and errors back into OpenAI's.
/// Adapters know nothing of tenants, budgets, routing or storage (see docs/architecture.md).
/// </summary>
internal interface IProviderAdapter
{
    /// <summary>The configuration value that selects this adapter: see <see cref="ProviderTypes"/>.</summary>
    string ProviderType { get; }

    /// <summary>
    /// Sends the request and returns as soon as the upstream's response headers have arrived:
    /// a <see cref="ProviderFailure"/> (nothing reached the client yet, so the router may retry),
    /// a <see cref="ProviderCompletion"/> for a non-streaming call, or a <see cref="ProviderStream"/>.
    /// Connection failures are returned as a retryable <see cref="ProviderFailure"/>, not thrown;
    /// cancellation is thrown.
    /// </summary>
    Task<ProviderResponse> SendAsync(ProviderCall call, CancellationToken cancellationToken);
}

/// <summary>The provider types the gateway speaks.</summary>
public static class ProviderTypes
{
    public const string OpenAICompatible = "openai_compatible";
    public const string Anthropic = "anthropic";
    public const string LlamaCpp = "llamacpp";

    public static readonly IReadOnlyList<string> All = [OpenAICompatible, Anthropic, LlamaCpp];
}

/// <summary>One upstream attempt: the client's request, the target chosen by the router, the handler chain to send it through.</summary>
internal sealed record ProviderCall(ChatCompletions.ChatRequest Request, Routing.RouteTarget Target, HttpMessageInvoker Http);
