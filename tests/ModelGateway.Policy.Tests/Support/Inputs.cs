using ModelGateway.Policy.Rules;

namespace ModelGateway.Policy.Tests.Support;

internal static class Inputs
{
    /// <summary>Monday 2 June 2025, 10:00 UTC.</summary>
    public static readonly DateTimeOffset Monday10Utc = new(2025, 6, 2, 10, 0, 0, TimeSpan.Zero);

    public static PolicyInput Request(string model = "chat-default", string? provider = "openai", int? maxOutputTokens = 256,
        decimal cost = 0.01m, string? text = null, DateTimeOffset? time = null, string tenant = "acme")
        => new()
        {
            Tenant = tenant,
            KeyId = "key-1",
            Model = model,
            Provider = provider,
            EstimatedInputTokens = 12,
            MaxOutputTokens = maxOutputTokens,
            EstimatedCostUsd = cost,
            Stream = false,
            HasTools = false,
            ClientIp = "127.0.0.1",
            Time = time ?? Monday10Utc,
            Text = text,
        };
}
