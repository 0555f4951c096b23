namespace ModelGateway.Api.Tests.Support;

/// <summary>
/// One gate for building every host in this assembly: the WebApplicationFactory instances (gateway, fake upstream,
/// policy) and the stand-in WebApplications. A factory finds its application's host by listening process-wide for the
/// next host being built, so a host built by another test class at the same moment can be taken for its own (seen as
/// "IServerAddressesFeature.Addresses cannot be modified after the server has started"). Building is rare and quick;
/// serialising it costs nothing measurable.
/// </summary>
internal static class TestHostStart
{
    public static readonly Lock Gate = new();
}
