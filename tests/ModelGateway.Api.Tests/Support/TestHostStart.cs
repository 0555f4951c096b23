namespace ModelGateway.Api.Tests.Support;

/// <summary>
/// One gate for starting every Kestrel-hosted WebApplicationFactory in this assembly (gateway, fake upstream, policy):
/// test classes run in parallel, and two factories starting at the same moment have raced on the server address list
/// ("IServerAddressesFeature.Addresses cannot be modified after the server has started"). Starting is rare and quick;
/// serialising it costs nothing measurable.
/// </summary>
internal static class TestHostStart
{
    public static readonly Lock Gate = new();
}
