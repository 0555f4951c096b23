using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace ModelGateway.Policy.Opa;

/// <summary>How one OPA Data API call ended.</summary>
internal enum OpaOutcomeKind
{
    /// <summary>200 with a <c>result</c>.</summary>
    Result,

    /// <summary>200 <c>{}</c>: the rule is undefined for this input.</summary>
    Undefined,

    /// <summary>OPA answered with an error status (400 bad input, 500 evaluation error...).</summary>
    Error,

    /// <summary>No answer within <see cref="OpaOptions.Timeout"/>.</summary>
    Timeout,

    /// <summary>No answer at all (connection refused, reset...).</summary>
    Unreachable,
}

internal sealed record OpaOutcome(OpaOutcomeKind Kind, JsonElement? Result = null, string? DecisionId = null, HttpStatusCode? Status = null, string? ErrorBody = null, string Detail = "")
{
    /// <summary>OPA's error object, when the error body is one.</summary>
    public OpaError? ParsedError
    {
        get
        {
            if (string.IsNullOrEmpty(ErrorBody))
            {
                return null;
            }

            try
            {
                return JsonSerializer.Deserialize(ErrorBody, OpaJsonContext.Default.OpaError);
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}

/// <summary>
/// One call to OPA's Data API under the configured timeout, classified into an <see cref="OpaOutcome"/>.
/// Shared by the decision engine and the <c>/api/opa/decide</c> passthrough.
/// </summary>
internal sealed class OpaEvaluator(IOpaClient client, IOptions<OpaOptions> options)
{
    public async Task<OpaOutcome> EvaluateAsync(JsonNode? input, CancellationToken cancellationToken)
    {
        var o = options.Value;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(o.Timeout);
        try
        {
            using var response = await client.EvaluateAsync(o.DecisionPath, new OpaDataRequest(input), timeout.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                // "If the path is undefined, this key will be omitted" (REST API, Get a Document with Input).
                return response.Content?.Result is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } result
                    ? new OpaOutcome(OpaOutcomeKind.Result, result, response.Content.DecisionId)
                    : new OpaOutcome(OpaOutcomeKind.Undefined, Detail: $"OPA result is undefined at data.{o.DecisionPath.Replace('/', '.')}");
            }

            if (response.HasRequestError(out var requestError))
            {
                return requestError.InnerException is OperationCanceledException && !cancellationToken.IsCancellationRequested
                    ? TimedOut(o)
                    : new OpaOutcome(OpaOutcomeKind.Unreachable, Detail: $"OPA is unreachable: {requestError.InnerException?.Message ?? requestError.Message}");
            }

            var body = response.HasResponseError(out var responseError) ? responseError.Content : null;
            var outcome = new OpaOutcome(OpaOutcomeKind.Error, Status: response.StatusCode, ErrorBody: body);
            var error = outcome.ParsedError;
            var status = ((int?)response.StatusCode)?.ToString(CultureInfo.InvariantCulture) ?? "?";
            return outcome with
            {
                Detail = error is null
                    ? $"OPA answered {status}"
                    : $"OPA answered {status} {error.Code}: {error.Message}{FirstDetail(error)}",
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return TimedOut(o);
        }
        catch (HttpRequestException e)
        {
            return new OpaOutcome(OpaOutcomeKind.Unreachable, Detail: $"OPA is unreachable: {e.Message}");
        }
    }

    private static OpaOutcome TimedOut(OpaOptions o)
        => new(OpaOutcomeKind.Timeout, Detail: string.Create(CultureInfo.InvariantCulture, $"OPA did not answer within {o.Timeout.TotalMilliseconds:0} ms"));

    private static string FirstDetail(OpaError error)
        => error.Errors is [{ } first, ..] ? $" ({first.Code}: {first.Message})" : "";
}
