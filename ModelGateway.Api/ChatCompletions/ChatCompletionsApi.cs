using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Errors;
using ModelGateway.Api.Hosting;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Streaming;
using ModelGateway.Api.StructuredOutput;
using ModelGateway.Api.Telemetry;
using ModelGateway.Api.Tenancy;
using ModelGateway.Api.Tokenization;
using ModelGateway.Api.Tracing;
using ModelGateway.Policy.Rules;
using Route = ModelGateway.Api.Routing.Route;

namespace ModelGateway.Api.ChatCompletions;

/// <summary>
/// <c>POST /v1/chat/completions</c>, the hot path. Steps, in order (docs/architecture.md has the full story):
/// 1 authenticate the key → tenant; 2 read and validate the body; 3 resolve the alias, apply the tenant's model list and
/// output cap, refuse a worst case above the tenant's per-request cap; 4 policy; 5 admission: rate limits and the budget
/// reservation in one Redis round trip; 6 route: try targets until one answers (retry only before the first byte reaches
/// the client); 7 relay the answer, chunk by chunk for streams; 8 settle: actual cost replaces the reservation and the
/// ledger row is queued, whatever the ending (answer, failure, cut stream, client gone). Every authenticated request,
/// admitted or refused, also queues a trace (see <see cref="TraceRecord"/>).
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
        Policy.PolicyGate policy, ILoggerFactory loggers, RequestAuthenticator auth, AdmissionService admission, ITokenCounter tokens,
        DurableBatchWriter<TraceRecord> traces, TimeProvider time, StructuredOutputGuard structuredOutput)
    {
        public StructuredOutputGuard StructuredOutput { get; } = structuredOutput;
        public DurableBatchWriter<TraceRecord> Traces { get; } = traces;
        public TimeProvider Time { get; } = time;
        public RequestAuthenticator Auth { get; } = auth;
        public AdmissionService Admission { get; } = admission;
        public ITokenCounter Tokens { get; } = tokens;
        public Policy.PolicyGate Policy { get; } = policy;
        public TenantStore Tenants { get; } = tenants;
        public RouteTable Routes { get; } = routes;
        public ModelRouter Router { get; } = router;
        public GatewayOptions Options { get; } = options.Value;
        public ILogger Logger { get; } = loggers.CreateLogger("ModelGateway.Api.ChatCompletions");
    }

    private static async Task HandleAsync(HttpContext context, Services services)
    {
        var started = Stopwatch.GetTimestamp();

        // 1. Authenticate.
        var caller = await AuthenticateAsync(context, services.Auth);
        if (caller is null)
        {
            return;
        }
        if (context.Features.Get<AccessLogFeature>() is { } log)
        {
            log.Tenant = caller.Tenant.Id;
        }
        Activity.Current?.SetTag("model_gateway.tenant.id", caller.Tenant.Id);
        // The trace's slot is taken before any work, like the ledger's: a trace promised always has room, and when the
        // store is down and the buffer full the request is refused instead of its trace being lost.
        if (!await services.Traces.ReserveSlotAsync(context.RequestAborted))
        {
            GatewayMetrics.Refused(caller.Tenant.Id, "trace_unavailable");
            await new OpenAIError(503, "The gateway cannot record traces right now (its trace store is unavailable and the buffer is full); retry shortly.",
                "api_error", null, "trace_unavailable").WriteResponseAsync(context);
            return;
        }
        var trace = new TraceDraft(started, services.Time.GetUtcNow());
        try
        {
            await HandleAuthenticatedAsync(context, services, caller, trace);
        }
        catch
        {
            trace.Faulted = true;
            throw;
        }
        finally
        {
            var record = trace.ToRecord(context, caller);
            services.Traces.Write(record);
            GatewayMetrics.RequestEnded(record.TenantId, record.Status, record.HttpStatus, record.CostMicroUsd);
        }
    }

    private static async Task HandleAuthenticatedAsync(HttpContext context, Services services, Caller caller, TraceDraft trace)
    {
        var aborted = context.RequestAborted;
        var tenant = caller.Tenant;

        // 2. Read and validate.
        var (body, readError) = ChatRequest.CheckContentType(context.Request.ContentType) is { } mediaError
            ? (default, mediaError)
            : await ReadBodyAsync(context, services.Options.MaxRequestBodyBytes);
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
        (trace.Alias, trace.Stream) = (request.Model, request.Stream);
        if (context.Features.Get<AccessLogFeature>() is { } log)
        {
            log.Alias = request.Model;
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
        // The route's own copy of the alias (the same text): the trace and the ledger row keep it until they are stored, and
        // the copy parsed from this request's body can then die young.
        trace.Alias = route.Alias;
        if (tenant.MaxOutputTokens is { } cap)
        {
            request.ClampMaxTokens(cap);
        }
        // Structured output: malformed fields or a schema that does not compile are a 400 here, before anything is reserved.
        if (!services.StructuredOutput.TryPlan(request, request.Model, out var structured, out var schemaError))
        {
            await schemaError!.WriteResponseAsync(context);
            return;
        }
        trace.StructuredOutput = structured;
        // The worst case is priced at the dearest target the request may reach, fallbacks included.
        var prices = WorstCasePrices(route, services.Routes);
        var promptTokens = services.Tokens.CountMessages(request.Messages);
        // A request that may be repaired is priced as both calls (StructuredOutputPlan.WorstCase).
        var (worstPrompt, worstOutput) = structured?.WorstCase(promptTokens, request.MaxTokens ?? route.DefaultMaxTokens)
                                         ?? (promptTokens, request.MaxTokens ?? route.DefaultMaxTokens);
        if (tenant.MaxMicroUsdPerRequest is { } maxCost
            && prices.CostMicroUsd(worstPrompt, worstOutput) is var worst && worst > maxCost)
        {
            // 400, not 403: the client can fix it by asking for fewer output tokens (or a shorter prompt).
            GatewayMetrics.Refused(tenant.Id, "request_cost_limit_exceeded");
            await new OpenAIError(400, $"This request may cost up to ${worst / 1_000_000m:0.######}, above your per-request limit of "
                + $"${maxCost / 1_000_000m:0.######}. Lower 'max_tokens' or shorten the prompt.", "invalid_request_error", "max_tokens",
                "request_cost_limit_exceeded").WriteResponseAsync(context);
            return;
        }

        // 4. Policy.
        var (_, denied) = await services.Policy.DecideAsync(context, caller, request, route, promptTokens, aborted);
        if (denied is not null)
        {
            GatewayMetrics.Refused(tenant.Id, denied.Code ?? "policy_denied");
            await denied.WriteResponseAsync(context);
            return;
        }

        // 5. Admission. A budgeted request is sent with an explicit output cap, so the reservation is truly its worst case.
        var maxOutput = request.MaxTokens ?? route.DefaultMaxTokens;
        if (tenant.BudgetMicroUsd is not null)
        {
            request.ClampMaxTokens(maxOutput);
        }
        (worstPrompt, worstOutput) = structured?.WorstCase(promptTokens, maxOutput) ?? (promptTokens, maxOutput);
        var admitting = Stopwatch.GetTimestamp();
        var admission = await services.Admission.AdmitAsync(caller, route.Alias, worstPrompt + worstOutput,
            prices.CostMicroUsd(worstPrompt, worstOutput), aborted);
        GatewayMetrics.Admitted(tenant.Id, admission.Ticket is { } admitted
            ? admitted.AdmittedLocally ? "admitted_locally" : admitted.Lease is not null ? "admitted_leased" : "admitted"
            : admission.Error?.StatusCode == 429 ? "refused" : "unavailable", Stopwatch.GetElapsedTime(admitting));
        admission.ApplyHeaders(context.Response);
        if (admission.Error is { } refused)
        {
            GatewayMetrics.Refused(tenant.Id, admission.RefusalReason ?? "refused");
            await refused.WriteResponseAsync(context);
            return;
        }

        var bill = new Bill(promptTokens, request.Stream, trace.Started)
        {
            Tags = new RequestTags(tenant.Id, admission.Ticket!.ReservedMicroUsd),
        };
        Activity.Current?.SetTag("model_gateway.reservation_usd", admission.Ticket.ReservedMicroUsd / 1_000_000.0);
        (trace.Id, trace.Ts, trace.Bill) = (admission.Ticket!.RequestId, admission.Ticket.AdmittedAt, bill);
        try
        {
            await RouteAndRelayAsync(context, services, request, route, bill, structured);
        }
        finally
        {
            // 8. Settle, whatever happened above (the client may be gone: nothing here observes its cancellation).
            var target = bill.Target;
            var usage = bill.Usage;
            bill.CostMicroUsd = target is null ? 0 : target.Prices.CostMicroUsd(usage.InputTokens, usage.OutputTokens, usage.CachedInputTokens);
            if (bill.Repair is { } repair)
            {
                // A structured-output repair is a second call, billed at the target that answered it.
                (usage, bill.CostMicroUsd) = (usage.Plus(repair.Usage), bill.CostMicroUsd + repair.CostMicroUsd);
                bill.Usage = usage;
            }
            trace.LatencyMs = Stopwatch.GetElapsedTime(trace.Started).TotalMilliseconds;
            // Not awaited: it is queued, and the next admission of the tenant carries it or sees it (see SettleAsync); it never throws.
            _ = services.Admission.SettleAsync(admission.Ticket!, new Settlement(bill.Status, bill.HttpStatus,
                target?.Provider.Name, target?.Model, usage, bill.CostMicroUsd, request.Stream, W3CTraceId.Of(context)));
        }
    }

    /// <summary>What settlement needs to know about how the request ended; filled in as the request progresses.</summary>
    private sealed class Bill(int promptTokens, bool stream, long started)
    {
        public int PromptTokens { get; } = promptTokens;
        public bool Stream { get; } = stream;
        public long Started { get; } = started;
        public RouteTarget? Target { get; set; }
        public TokenUsage Usage { get; set; }
        public string Status { get; set; } = "error";
        public int HttpStatus { get; set; } = 500;
        public long CostMicroUsd { get; set; }
        public AttemptLog Attempts { get; set; }
        public double? TimeToFirstTokenMs { get; set; }
        public RequestTags? Tags { get; init; }
        public RepairCall? Repair { get; set; }
    }

    /// <summary>The trace of an authenticated request, filled in as it progresses and queued whatever the ending.</summary>
    private sealed class TraceDraft(long started, DateTimeOffset now)
    {
        public long Started { get; } = started;
        public Guid Id { get; set; } = Uuid7.New(now);
        public DateTimeOffset Ts { get; set; } = now;
        public string? Alias { get; set; }
        public bool Stream { get; set; }
        public Bill? Bill { get; set; }
        public bool Faulted { get; set; }
        public double? LatencyMs { get; set; }
        public StructuredOutputPlan? StructuredOutput { get; set; }

        public TraceRecord ToRecord(HttpContext context, Caller caller)
        {
            var bill = Bill;
            var usage = bill?.Usage ?? default;
            // Not admitted: refused before routing (policy, limits, budget, validation) with the status already written.
            var (status, http) = Faulted
                ? context.RequestAborted.IsCancellationRequested ? ("client_disconnected", 499) : ("error", 500)
                : bill is null ? ("refused", context.Response.StatusCode) : (bill.Status, bill.HttpStatus);
            return new TraceRecord(Id, W3CTraceId.Of(context), Ts, caller.Tenant.Id, caller.KeyId, Alias, bill?.Attempts ?? default,
                bill?.Target?.Provider.Name, bill?.Target?.Model, status, http, bill?.TimeToFirstTokenMs,
                LatencyMs ?? Stopwatch.GetElapsedTime(Started).TotalMilliseconds, usage.InputTokens, usage.OutputTokens,
                usage.CachedInputTokens, bill?.CostMicroUsd ?? 0, Stream, StructuredOutput?.ToTraceJson());
        }
    }

    private static async Task RouteAndRelayAsync(HttpContext context, Services services, ChatRequest request, Route route, Bill bill,
        StructuredOutputPlan? structured)
    {
        var aborted = context.RequestAborted;

        // 6. Route.
        GatewayMetrics.Routed(bill.Tags!.TenantId, Stopwatch.GetElapsedTime(bill.Started));
        RoutedResponse routed;
        try
        {
            routed = await services.Router.SendAsync(request, route, bill.Tags, aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client left before any upstream answered; nothing to relay, nothing produced that reached anyone.
            (bill.Status, bill.HttpStatus) = ("client_disconnected", 499);
            return;
        }
        bill.Attempts = routed.Attempts;

        if (routed.Failure is { } failure)
        {
            (bill.Status, bill.HttpStatus) = ("upstream_error", failure.StatusCode);
            if (failure.RetryAfter is { } retryAfter)
            {
                context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            await new OpenAIError(failure.StatusCode, failure.Message, failure.Type, null, failure.Code).WriteResponseAsync(context);
            return;
        }
        bill.Target = routed.Target;

        // 7. Relay.
        if (routed.Completion is { } completion)
        {
            using (completion)
            {
                // Billed from the provider's usage before writing: a client that leaves now has still been served.
                (bill.Usage, bill.Status, bill.HttpStatus) = (completion.Usage, "ok", 200);
                if (structured is null)
                {
                    // Nothing to check: the answer goes out as the adapter has it (an OpenAI server's bytes as they came).
                    context.Response.StatusCode = 200;
                    context.Response.ContentType = "application/json";
                    await completion.WriteToAsync(context.Response.BodyWriter, aborted);
                    return;
                }
                var checkedAnswer = await services.StructuredOutput.EnforceAsync(structured, request, route, completion, bill.Tags, aborted);
                if (checkedAnswer.Repair is { } repair)
                {
                    (bill.Repair, bill.Attempts) = (repair, bill.Attempts.Then(repair.Attempts));
                }
                if (checkedAnswer.Error is { } invalid)
                {
                    (bill.Status, bill.HttpStatus) = (StructuredOutputErrors.InvalidOutputCode, invalid.StatusCode);
                    await invalid.WriteResponseAsync(context);
                    return;
                }
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/json";
                await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
                checkedAnswer.Completion!.WriteTo(writer);
                await writer.FlushAsync(aborted);
            }
            return;
        }

        // The router returns a stream once its first event is read: the first token has reached the gateway.
        bill.TimeToFirstTokenMs = routed.HasFirstEvent ? Stopwatch.GetElapsedTime(bill.Started).TotalMilliseconds : null;
        using (routed.Stream)
        {
            await using var events = routed.Events!;
            bill.HttpStatus = 200;
            using var outcome = await SseRelay.RelayAsync(context, request, events, routed.HasFirstEvent, services.Logger, structured is null ? null : structured.CheckStream);
            bill.Status = outcome.Completed ? "ok" : outcome.ClientDisconnected ? "client_disconnected"
                : outcome.Error == StructuredOutputErrors.InvalidOutputCode ? outcome.Error : "stream_error";
            // Streams are billed from their usage chunk; a stream cut short (or a client gone) without one is billed for
            // what was produced: the prompt as counted at admission and the relayed text, counted with the tokenizer.
            bill.Usage = outcome.Usage
                ?? new TokenUsage(bill.PromptTokens, services.Tokens.CountText(outcome.Content.ToString()), 0, Estimated: true);
        }
    }

    private static Prices WorstCasePrices(Route route, RouteTable routes)
    {
        var worst = route.WorstCasePrices;
        foreach (var alias in route.Fallbacks)
        {
            if (routes.TryGet(alias, out var fallback))
            {
                var p = fallback.WorstCasePrices;
                worst = new Prices(Math.Max(worst.InputMicroUsdPerMillion, p.InputMicroUsdPerMillion),
                    Math.Max(worst.OutputMicroUsdPerMillion, p.OutputMicroUsdPerMillion),
                    Math.Max(worst.CachedInputMicroUsdPerMillion, p.CachedInputMicroUsdPerMillion));
            }
        }
        return worst;
    }

    private static async Task ListModelsAsync(HttpContext context, RequestAuthenticator auth, RouteTable routes)
    {
        var caller = await AuthenticateAsync(context, auth);
        if (caller is null)
        {
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

    /// <summary>The tenant caller, or null after writing the 401 (or the flood guard's 429).</summary>
    internal static async ValueTask<Caller?> AuthenticateAsync(HttpContext context, RequestAuthenticator auth)
    {
        var (result, caller) = await auth.AuthenticateAsync(context, allowAdmin: false);
        if (result == AuthResult.Flooded)
        {
            context.Response.Headers.RetryAfter = "60";
            await new OpenAIError(429, "Too many requests without a valid API key from your address; retry later.", "rate_limit_error",
                null, "rate_limit_exceeded").WriteResponseAsync(context);
            return null;
        }
        if (caller is null)
        {
            await OpenAIError.Unauthorized("Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.").WriteResponseAsync(context);
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
