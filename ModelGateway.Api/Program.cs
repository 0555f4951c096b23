var builder = WebApplication.CreateBuilder(args);
builder.AddBasicServiceDefaults();

var app = builder.Build();
app.MapDefaultEndpoints(mapHealth: false);
app.MapGet("/health", () => new { ok = true, time = DateTimeOffset.UtcNow });
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
