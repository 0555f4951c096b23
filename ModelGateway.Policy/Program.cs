using ModelGateway.Policy.Decisions;
using ModelGateway.Policy.Health;

var builder = WebApplication.CreateBuilder(args);
// Basic defaults (no standard resilience handler): the only outbound call is OPA, under its own short budget.
builder.AddBasicServiceDefaults();
builder.AddPolicyService();

var app = builder.Build();
app.MapDefaultEndpoints(mapHealth: false);
app.MapPolicyHealth();
app.MapPolicyApi();
app.LogPolicyEngine();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
