// Forwards /v1/* to {Upstream}/openai/v1/* and anything else verbatim: what any .NET proxy costs at least.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.Services.AddHttpForwarder();
var app = builder.Build();
var upstream = app.Configuration["Upstream"] ?? throw new InvalidOperationException("Set --Upstream=http://host:port");
app.MapForwarder("/v1/{**rest}", upstream.TrimEnd('/') + "/openai");
app.MapForwarder("/anthropic/{**rest}", upstream.TrimEnd('/'));
app.Run();
