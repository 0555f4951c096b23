using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Errors;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Streaming;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.ChatCompletions;

/// <summary>
/// <c>POST /v1/chat/completions</c>, the hot path. Steps, in order (docs/architecture.md has the full story):
/// 1 authenticate the key → tenant; 2 read and validate the body; 3 resolve the alias and apply the tenant's model list
/// and output cap; 4 policy; 5 route: try targets until one answers (retry only before the first byte reaches the client);
/// 6 relay the answer, chunk by chunk for streams; 7 record what happened.
/// </summary>
internal static class ChatCompletionsApi
{
    public static IEndpointRouteBuilder MapChatCompletionsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/chat/completions", HandleAsync);
        app.MapGet("/v1/models", ListModelsAsync);
        return app;
    }

    internal sealed class Services(TenantStore tenants, RouteTable routes, ModelRouter router, IOptions<GatewayOptions> options,
        Policy.PolicyGate policy, ILoggerFactory loggers)
    {
        public Policy.PolicyGate Policy { get; } = policy;
        public TenantStore Tenants { get; } = tenants;
        public RouteTable Routes { get; } = routes;
        public ModelRouter Router { get; } = router;
        public GatewayOptions Options { get; } = options.Value;
        public ILogger Logger { get; } = loggers.CreateLogger("ModelGateway.Api.ChatCompletions");
    }

    private static async Task HandleAsync(HttpContext context, Services services)
    {
        var aborted = context.RequestAborted;

        // 1. Authenticate.
        var caller = await AuthenticateAsync(context, services.Tenants);
        if (caller is null)
        {
            await OpenAIError.Unauthorized("Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.").WriteResponseAsync(context);
            return;
        }
        var tenant = caller.Tenant;

        // 2. Read and validate.
        var (body, readError) = await ReadBodyAsync(context, services.Options.MaxRequestBodyBytes);
        if (readError is not null)
        {
            await readError.WriteResponseAsync(context);
            return;
        }
        var request = ChatRequest.Parse(body, out var parseError);
        if (request is null)
        {
            await parseError!.WriteResponseAsync(context);
            return;
        }
        // The original gateway chose the tenant from a body field; ours comes from the key. A body naming another tenant is refused.
        if (request.Body["tenant"] is JsonValue tenantField && (tenantField.GetValueKind() != JsonValueKind.String || tenantField.GetValue<string>() != tenant.Id))
        {
            await new OpenAIError(403, "The 'tenant' field names a tenant other than the one your API key belongs to.", "permission_error", "tenant", "tenant_mismatch")
                .WriteResponseAsync(context);
            return;
        }

        // 3. Resolve the alias for this tenant.
        if (!services.Routes.TryGet(request.Model, out var route) || !tenant.MayUse(request.Model))
        {
            await OpenAIError.NotFound($"The model '{request.Model}' does not exist or you do not have access to it.", "model", "model_not_found")
                .WriteResponseAsync(context);
            return;
        }
        if (tenant.MaxOutputTokens is { } cap)
        {
            request.ClampMaxTokens(cap);
        }

        // 4. Policy.
        var (_, denied) = await services.Policy.DecideAsync(context, caller, request, route, aborted);
        if (denied is not null)
        {
            await denied.WriteResponseAsync(context);
            return;
        }

        // 5. Route.
        RoutedResponse routed;
        try
        {
            routed = await services.Router.SendAsync(request, route, null, aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return; // The client left before any upstream answered; nothing to relay.
        }

        if (routed.Failure is { } failure)
        {
            if (failure.RetryAfter is { } retryAfter)
            {
                context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            await new OpenAIError(failure.StatusCode, failure.Message, failure.Type, null, failure.Code).WriteResponseAsync(context);
            return;
        }

        // 6. Relay.
        if (routed.Completion is { } completion)
        {
            using (completion)
            {
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/json";
                await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
                completion.Completion.WriteTo(writer);
                await writer.FlushAsync(aborted);
            }
            return;
        }

        using (routed.Stream)
        {
            await using var events = routed.Events!;
            await SseRelay.RelayAsync(context, request, events, routed.HasFirstEvent, services.Logger);
        }
    }

    private static async Task ListModelsAsync(HttpContext context, TenantStore tenants, RouteTable routes)
    {
        var caller = await AuthenticateAsync(context, tenants);
        if (caller is null)
        {
            await OpenAIError.Unauthorized("Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.").WriteResponseAsync(context);
            return;
        }
        var data = new JsonArray();
        foreach (var alias in routes.Aliases.Order(StringComparer.Ordinal))
        {
            if (caller.Tenant.MayUse(alias))
            {
                data.Add(new JsonObject { ["id"] = alias, ["object"] = "model", ["created"] = 0, ["owned_by"] = "model-gateway" });
            }
        }
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        new JsonObject { ["object"] = "list", ["data"] = data }.WriteTo(writer);
    }

    internal static async ValueTask<Caller?> AuthenticateAsync(HttpContext context, TenantStore tenants)
    {
        var key = ApiKeys.BearerToken(context);
        if (key is null || key.Length > 256)
        {
            return null;
        }
        var caller = await tenants.AuthenticateAsync(key, context.RequestAborted);
        if (caller is not null)
        {
            context.Items[typeof(Caller)] = caller;
        }
        return caller;
    }

    /// <summary>Reads the whole body (bounded). Over the limit: 413 in the OpenAI envelope, nothing else happens.</summary>
    private static async Task<(ReadOnlyMemory<byte> Body, OpenAIError? Error)> ReadBodyAsync(HttpContext context, int maxBytes)
    {
        static OpenAIError TooLarge(int max) => new(413, $"The request body exceeds the {max} byte limit.", "invalid_request_error", null, "request_too_large");

        if (context.Request.ContentLength is { } length && length > maxBytes)
        {
            return (default, TooLarge(maxBytes));
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = maxBytes;
        }
        var reader = context.Request.BodyReader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(context.RequestAborted);
                if (result.Buffer.Length > maxBytes)
                {
                    reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                    return (default, TooLarge(maxBytes));
                }
                if (result.IsCompleted)
                {
                    var bytes = result.Buffer.ToArray();
                    reader.AdvanceTo(result.Buffer.End);
                    return (bytes, null);
                }
                reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == 413)
        {
            return (default, TooLarge(maxBytes));
        }
    }
}
