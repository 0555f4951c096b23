using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ModelGateway.AppHost.Infrastructure;

// The ModelGateway application model: every resource and how they reference each other.
// `dotnet run` starts it all with the Aspire dashboard; publish mode (`azd`) deploys the same model.
var builder = DistributedApplication.CreateBuilder(args);
var useContainers = InfrastructureMode.UseContainers(builder);

// Shared, fast state (rate-limit windows, spend counters, reservations) and durable state (tenants, keys, ledger, traces).
IResourceBuilder<IResourceWithConnectionString> redis;
IResourceBuilder<IResourceWithConnectionString> postgres;
if (useContainers)
{
    redis = builder.AddRedis("redis");
    postgres = builder.AddPostgres("postgres-server").WithDataVolume().AddDatabase("postgres", "modelgateway");
}
else
{
    redis = builder.AddLocalRedis("redis");
    postgres = builder.AddLocalPostgres("postgres", "modelgateway");
}

// TURN relays for realtime clients behind NAT.
var turnPort = builder.Configuration.GetValue("TurnPort", 3478);
builder.Configuration["Parameters:turn-secret"] ??= builder.ExecutionContext.IsRunMode ? "dev-turn-secret-change-me" : null;
var turnSecret = builder.AddParameter("turn-secret", secret: true);
IResourceBuilder<IResource>? coturn = null;
if (!useContainers && LocalServers.CommandExists("turnserver"))
{
    coturn = builder.AddLocalCoturn("coturn", turnSecret, turnPort, allowLoopbackPeers: builder.Environment.IsDevelopment());
}

// Services.
var environment = builder.Environment.EnvironmentName;
var apiPort = builder.Configuration.GetValue("ApiPort", 8080);

var policy = builder.AddProject<Projects.ModelGateway_Policy>("policy")
    .WithHttpEndpoint()
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
    .WithHttpHealthCheck("/alive");

var api = builder.AddProject<Projects.ModelGateway_Api>("api", launchProfileName: null)
    .WithHttpEndpoint(port: apiPort, targetPort: apiPort, name: "http", isProxied: false)
    .WithExternalHttpEndpoints()
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
    .WithReference(redis).WaitFor(redis)
    .WithReference(postgres).WaitFor(postgres)
    .WithReference(policy)
    .WithHttpHealthCheck("/health")
    .WithProviders(builder, () => builder.AddProject<Projects.ModelGateway_FakeUpstream>("fake-upstream")
        .WithHttpEndpoint()
        .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
        .WithHttpHealthCheck("/health"));

var realtime = builder.AddProject<Projects.ModelGateway_Realtime>("realtime")
    .WithHttpEndpoint()
    .WithExternalHttpEndpoints()
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
    .WithReference(api)
    .WithEnvironment("Realtime__ApiBaseUrl", api.GetEndpoint("http"))
    .WithEnvironment("Realtime__Turn__Secret", turnSecret)
    .WithEnvironment("Realtime__Turn__Urls__0", "turn:127.0.0.1:" + turnPort.ToString(System.Globalization.CultureInfo.InvariantCulture) + "?transport=udp")
    .WithHttpHealthCheck("/alive");
if (coturn is not null)
{
    realtime.WaitFor(coturn);
}

// The Api forwards /realtime/* to the Realtime service so clients need one front door.
api.WithEnvironment("Realtime__BaseUrl", realtime.GetEndpoint("http"));

builder.Build().Run();
