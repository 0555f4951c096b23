using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using ModelGateway.Realtime.Chat;
using ModelGateway.Realtime.Sessions;
using ModelGateway.Realtime.Turn;

namespace ModelGateway.Realtime.Signalling;

/// <summary>The original's JSON signalling shape: <c>{"type":"offer"|"answer","sdp":"..."}</c> (as RTCSessionDescriptionInit).</summary>
internal sealed record SessionDescriptionMessage(string? Type, string? Sdp);

internal sealed record IceServer(IReadOnlyList<string> Urls, string? Username, string? Credential);

internal sealed record IceServersResponse(IReadOnlyList<IceServer> IceServers, long Ttl);

/// <summary>
/// Signalling over HTTP: <c>POST /realtime/offer</c> answers a browser's offer and starts a session;
/// <c>GET /realtime/ice-servers</c> hands out TURN credentials. Both need the tenant's key
/// (<c>Authorization: Bearer</c>), checked with the Api. Errors use OpenAI's envelope like <c>/v1/*</c>.
/// </summary>
internal static class RealtimeApi
{
    public const string SessionIdHeader = "X-Realtime-Session-Id";
    private const string SdpMediaType = "application/sdp";

    public static IEndpointRouteBuilder MapRealtimeApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/realtime");
        group.MapPost("/offer", PostOfferAsync);
        group.MapGet("/ice-servers", GetIceServersAsync);
        return app;
    }

    /// <summary>
    /// 1. The key must be present (401). 2. The body must be an SDP offer, as JSON or application/sdp
    /// (415, 400, 413). 3. The offer must parse and have a data-channel section (400). 4. The Api must
    /// accept the key (401; 503 if it cannot be asked). 5. A session slot and a UDP port must be free
    /// (503). Only then is a session created and the answer returned in the request's format.
    /// </summary>
    private static async Task<IResult> PostOfferAsync(HttpContext context, ApiKeyValidator keys, SessionManager sessions, RealtimeTelemetry telemetry)
    {
        var cancellationToken = context.RequestAborted;
        if (BearerKey(context.Request) is not { } key)
        {
            return Reject(telemetry, "no_key", MissingKey());
        }
        if (context.Request.ContentLength > SdpOffer.MaxSdpLength * 2)
        {
            return Reject(telemetry, "too_large", Error(413, "The offer is too large.", "invalid_request_error", "request_too_large"));
        }
        var mediaType = MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var contentType) ? contentType.MediaType.Value : null;
        var isSdp = string.Equals(mediaType, SdpMediaType, StringComparison.OrdinalIgnoreCase);
        if (!isSdp && !string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase))
        {
            return Reject(telemetry, "media_type", Error(415, "Send the offer as application/json {\"type\":\"offer\",\"sdp\":...} or as application/sdp.", "invalid_request_error", "unsupported_media_type"));
        }

        var body = await ReadBodyAsync(context.Request, SdpOffer.MaxSdpLength * 2, cancellationToken);
        if (body is null)
        {
            return Reject(telemetry, "too_large", Error(413, "The offer is too large.", "invalid_request_error", "request_too_large"));
        }
        string? sdp;
        if (isSdp)
        {
            sdp = body;
        }
        else
        {
            SessionDescriptionMessage? message;
            try
            {
                message = JsonSerializer.Deserialize(body, RealtimeJsonContext.Default.SessionDescriptionMessage);
            }
            catch (JsonException)
            {
                return Reject(telemetry, "bad_json", Error(400, "The body is not JSON of the form {\"type\":\"offer\",\"sdp\":...}.", "invalid_request_error", "invalid_json"));
            }
            if (message?.Type != "offer")
            {
                return Reject(telemetry, "not_offer", Error(400, "\"type\" must be \"offer\".", "invalid_request_error", "invalid_type", "type"));
            }
            sdp = message.Sdp;
        }

        if (sdp?.Length > SdpOffer.MaxSdpLength)
        {
            // Too large is the client's size problem (413), not a malformed offer (400), whichever envelope carried it.
            return Reject(telemetry, "too_large", Error(413, $"The SDP is larger than {SdpOffer.MaxSdpLength} characters.", "invalid_request_error", "request_too_large", "sdp"));
        }
        SdpOffer offer;
        try
        {
            offer = SdpOffer.Parse(sdp);
        }
        catch (SdpException e)
        {
            return Reject(telemetry, "bad_sdp", Error(400, e.Message, "invalid_request_error", "invalid_sdp", "sdp"));
        }

        switch (await keys.ValidateAsync(key, cancellationToken))
        {
            case KeyCheck.Invalid:
                return Reject(telemetry, "invalid_key", InvalidKey());
            case KeyCheck.Unavailable:
                return Reject(telemetry, "api_unavailable", ApiUnavailable());
        }

        switch (sessions.TryCreate(offer, key, out var session, out var answer))
        {
            case CreateOutcome.TooManySessions:
                return Reject(telemetry, "too_many_sessions", Error(503, "The realtime endpoint is at its session limit; try again later.", "server_error", "too_many_sessions"));
            case CreateOutcome.NoPort:
                return Reject(telemetry, "no_port", Error(503, "No UDP port is free for a new session; try again later.", "server_error", "no_port"));
        }

        context.Response.Headers[SessionIdHeader] = session!.Id;
        return isSdp
            ? Results.Text(answer, SdpMediaType, Encoding.UTF8)
            : Results.Json(new SessionDescriptionMessage("answer", answer), RealtimeJsonContext.Default.SessionDescriptionMessage);
    }

    /// <summary>TURN REST credentials for the caller (draft-uberti-behave-turn-rest-00 §2.2), valid for CredentialLifetime.</summary>
    private static async Task<IResult> GetIceServersAsync(HttpContext context, ApiKeyValidator keys, IOptions<TurnOptions> turnOptions, TimeProvider time)
    {
        if (BearerKey(context.Request) is not { } key)
        {
            return MissingKey();
        }
        switch (await keys.ValidateAsync(key, context.RequestAborted))
        {
            case KeyCheck.Invalid:
                return InvalidKey();
            case KeyCheck.Unavailable:
                return ApiUnavailable();
        }
        var turn = turnOptions.Value;
        var servers = new List<IceServer>();
        if (turn.Urls.Count > 0 && turn.Secret is not null)
        {
            var credential = TurnCredentials.Create(turn.Secret, ApiKeyValidator.TenantLabel(key), time.GetUtcNow(), turn.CredentialLifetime);
            servers.Add(new IceServer(turn.Urls, credential.Username, credential.Credential));
        }
        context.Response.Headers.CacheControl = "no-store";
        return Results.Json(new IceServersResponse(servers, (long)turn.CredentialLifetime.TotalSeconds), RealtimeJsonContext.Default.IceServersResponse);
    }

    private static string? BearerKey(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        var key = header[prefix.Length..].Trim();
        return key.Length == 0 ? null : key;
    }

    private static async Task<string?> ReadBodyAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var buffer = new char[limit + 1];
        var total = 0;
        int read;
        while (total <= limit && (read = await reader.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
        {
            total += read;
        }
        return total > limit ? null : new string(buffer, 0, total);
    }

    private static IResult Reject(RealtimeTelemetry telemetry, string reason, IResult result)
    {
        telemetry.OffersRejected.Add(1, new KeyValuePair<string, object?>("reason", reason));
        return result;
    }

    private static IResult MissingKey() =>
        Error(401, "Missing API key: send Authorization: Bearer <your key>.", "invalid_request_error", "missing_api_key");

    private static IResult InvalidKey() =>
        Error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");

    private static IResult ApiUnavailable() =>
        Error(503, "The key could not be checked: the gateway API is unavailable.", "server_error", "api_unavailable");

    private static IResult Error(int status, string message, string type, string code, string? param = null) =>
        Results.Text(ErrorEnvelope.Create(message, type, code, param), "application/json", Encoding.UTF8, status);
}
