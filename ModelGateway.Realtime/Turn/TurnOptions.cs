using Microsoft.Extensions.Options;

namespace ModelGateway.Realtime.Turn;

/// <summary>TURN servers handed to browsers (section <c>Realtime:Turn</c>). Validated at start-up.</summary>
public sealed class TurnOptions
{
    public const string SectionName = "Realtime:Turn";

    /// <summary>TURN URLs, e.g. <c>turn:turn.example.com:3478?transport=udp</c>. Empty (default): no TURN offered.</summary>
    public List<string> Urls { get; set; } = [];

    /// <summary>The secret shared with coturn (<c>--static-auth-secret</c>). Required when <see cref="Urls"/> is set.</summary>
    public string? Secret { get; set; }

    /// <summary>Lifetime of the credentials handed out. Default 1 hour.</summary>
    public TimeSpan CredentialLifetime { get; set; } = TimeSpan.FromHours(1);
}

internal sealed class TurnOptionsValidator : IValidateOptions<TurnOptions>
{
    public ValidateOptionsResult Validate(string? name, TurnOptions o)
    {
        var errors = new List<string>();
        foreach (var url in o.Urls)
        {
            if (!url.StartsWith("turn:", StringComparison.Ordinal) && !url.StartsWith("turns:", StringComparison.Ordinal))
            {
                errors.Add($"Realtime:Turn:Urls: '{url}' must start with turn: or turns:.");
            }
        }
        if (o.Urls.Count > 0 && (o.Secret is null || o.Secret.Length < 16))
        {
            errors.Add("Realtime:Turn:Secret must be set (at least 16 characters) when TURN URLs are configured.");
        }
        if (o.CredentialLifetime < TimeSpan.FromMinutes(1) || o.CredentialLifetime > TimeSpan.FromDays(1))
        {
            errors.Add("Realtime:Turn:CredentialLifetime must be between 1 minute and 1 day.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
