using ModelGateway.Realtime;
using ModelGateway.Realtime.Signalling;

var builder = WebApplication.CreateBuilder(args);
// Basic defaults: no standard resilience handler, whose retries and 10 s timeout would break chat streams.
builder.AddBasicServiceDefaults();
builder.AddRealtime();

var app = builder.Build();
app.UseDefaultFiles();
app.UseStaticFiles();
app.MapDefaultEndpoints();
app.MapRealtimeApi();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
