using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ModelGateway.AppHost.Infrastructure;

// The ModelGateway application model: every resource and how they reference each other.
// `dotnet run` starts it all with the Aspire dashboard; publish mode (`azd`) deploys the same model (docs/deploy.md).
var builder = DistributedApplication.CreateBuilder(args);
var useContainers = InfrastructureMode.UseContainers(builder);
var isPublish = builder.ExecutionContext.IsPublishMode;
// A deployment runs as Production whatever environment the AppHost itself was launched in (azd launches it with the
// Development launch profile); locally the services follow the AppHost.
var environment = isPublish ? Environments.Production : builder.Environment.EnvironmentName;
var secrets = DeploymentSecrets.Add(builder);

// Shared, fast state (rate-limit windows, spend counters, reservations) and durable state (tenants, keys, ledger, traces).
// Their passwords are secret parameters that Aspire generates (azd stores them once generated).
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

// OPA for tenants that use it; only where containers exist (otherwise Policy decides with its built-in engine).
var opa = useContainers ? builder.AddOpa("opa") : null;

// TURN relays for realtime clients behind NAT: a container where containers exist, Debian's coturn otherwise.
var turnPort = builder.Configuration.GetValue("TurnPort", TurnRelay.Port);
IResourceBuilder<IResource>? coturn = null;
if (useContainers)
{
    coturn = builder.AddCoturnContainer("coturn", secrets.TurnSecret);
}
else if (LocalServers.CommandExists("turnserver"))
{
    coturn = builder.AddLocalCoturn("coturn", secrets.TurnSecret, turnPort, allowLoopbackPeers: builder.Environment.IsDevelopment());
}

// Services.
var apiPort = builder.Configuration.GetValue("ApiPort", 8080);

var policy = builder.AddProject<Projects.ModelGateway_Policy>("policy")
    .WithHttpEndpoint()
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
    .WithSecret("Policy__AdminKey", secrets.AdminKey)
    .WithSecret("Policy__ServiceKey", secrets.PolicyServiceKey)
    .WithServiceProbes();
if (opa is not null)
{
    policy.WithEnvironment("Policy__Opa__Url", opa.GetEndpoint("http")).WaitFor(opa);
}

var api = builder.AddProject<Projects.ModelGateway_Api>("api", launchProfileName: null)
    .WithHttpEndpoint(port: apiPort, targetPort: apiPort, name: "http", isProxied: false)
    .WithExternalHttpEndpoints()
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", environment)
    // The gateway's gen0 budget and malloc arenas, as its container image sets them (ModelGateway.Api.csproj says why; only
    // the environment can).
    .WithEnvironment("DOTNET_GCgen0size", "0x1000000")
    .WithEnvironment("MALLOC_ARENA_MAX", "2")
    .WithSecret("Tenancy__AdminKey", secrets.AdminKey)
    .WithSecret("PolicyClient__ServiceKey", secrets.PolicyServiceKey)
    .WithReference(redis).WaitFor(redis)
    .WithReference(postgres).WaitFor(postgres)
    .WithReference(policy)
    .WithServiceProbes()
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
    .WithEnvironment("Realtime__Turn__Secret", secrets.TurnSecret)
    .WithServiceProbes();
if (isPublish)
{
    // What browsers are told: the public name of coturn's TCP ingress, and the address coturn relays media to.
    // Neither is known before Azure assigns it, so the operator sets both (docs/deploy.md).
    var turnHost = builder.AddParameter("turn-host");
    realtime
        .WithEnvironment("Realtime__Turn__Urls__0", ReferenceExpression.Create($"turn:{turnHost}:{TurnRelay.Port.ToString(CultureInfo.InvariantCulture)}?transport=tcp"))
        .WithEnvironment("Realtime__Turn__Urls__1", ReferenceExpression.Create($"turns:{turnHost}:{TurnRelay.Port.ToString(CultureInfo.InvariantCulture)}?transport=tcp"))
        .WithEnvironment("Realtime__CandidateAddresses__0", builder.AddParameter("realtime-candidate-address"));
}
else
{
    realtime.WithEnvironment("Realtime__Turn__Urls__0", "turn:127.0.0.1:" + turnPort.ToString(CultureInfo.InvariantCulture) + "?transport=udp");
}
if (coturn is not null && !isPublish)
{
    realtime.WaitFor(coturn);
}

// The Api forwards /realtime/* to the Realtime service so clients need one front door.
api.WithEnvironment("Realtime__BaseUrl", realtime.GetEndpoint("http"));

builder.Build().Run();
