using Microsoft.Extensions.DependencyInjection.Extensions;
using ModelGateway.FakeUpstream.Anthropic;
using ModelGateway.FakeUpstream.Chat;
using ModelGateway.FakeUpstream.Control;
using ModelGateway.FakeUpstream.Faults;
using ModelGateway.FakeUpstream.LlamaCpp;
using ModelGateway.FakeUpstream.OpenAI;

namespace ModelGateway.FakeUpstream;

/// <summary>Registration and endpoints of the fake upstream (docs/fake-upstream.md).</summary>
internal static class FakeUpstreamExtensions
{
    public static IHostApplicationBuilder AddFakeUpstream(this IHostApplicationBuilder builder)
    {
        // Singletons shared by every request: the state the control endpoints read and reset.
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<RequestLog>();
        builder.Services.TryAddSingleton<UsageStats>();
        builder.Services.TryAddSingleton<FaultCounters>();
        return builder;
    }

    /// <summary>
    /// One base path per protocol, as the gateway is configured: {fake}/openai/v1, {fake}/anthropic,
    /// {fake}/llamacpp. Handlers are plain RequestDelegates: no parameter binding, no reflection.
    /// </summary>
    public static IEndpointRouteBuilder MapFakeUpstream(this IEndpointRouteBuilder app)
    {
        MapChat(app, "/openai/v1/chat/completions", new OpenAIProtocol());
        MapChat(app, "/anthropic/v1/messages", new AnthropicProtocol());
        MapChat(app, "/llamacpp/v1/chat/completions", new LlamaCppProtocol());
        app.MapControlApi();
        return app;
    }

    private static void MapChat(IEndpointRouteBuilder app, string pattern, IChatProtocol protocol) =>
        app.MapPost(pattern, context => ChatPipeline.HandleAsync(context, protocol));
}
