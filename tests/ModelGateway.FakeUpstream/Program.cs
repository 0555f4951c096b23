using ModelGateway.FakeUpstream;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddFakeUpstream();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapFakeUpstream();
app.Run();

// WebApplicationFactory<Program> needs a public entry type (the Api tests reference this project with extern alias FakeUpstream).
public partial class Program;
