using ModelGateway.Api.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddBasicServiceDefaults();
builder.AddGateway();

var app = builder.Build();
app.MapDefaultEndpoints(mapHealth: false);
app.MapGateway();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
