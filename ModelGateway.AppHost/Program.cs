var builder = DistributedApplication.CreateBuilder(args);
var fake = builder.AddProject<Projects.ModelGateway_FakeUpstream>("fake-upstream");
builder.AddProject<Projects.ModelGateway_Api>("api").WithReference(fake);
builder.Build().Run();
