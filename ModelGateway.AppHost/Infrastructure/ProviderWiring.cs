namespace ModelGateway.AppHost.Infrastructure;

/// <summary>
/// Points the three default aliases at real providers when their keys are set (OPENROUTER_API_KEY, ANTHROPIC_API_KEY,
/// LLAMA_CPP_BASE), and at the fake upstream that ships with the repository otherwise, so a chat request works on a
/// fresh machine with no keys. The fake exists only in a Development run: a deployment (or a run in another environment)
/// always gets the key parameters, and the Api refuses to start without them. Keys travel as secret parameters, never as
/// plain values.
/// </summary>
internal static class ProviderWiring
{
    public static IResourceBuilder<ProjectResource> WithProviders(this IResourceBuilder<ProjectResource> api,
        IDistributedApplicationBuilder builder, Func<IResourceBuilder<ProjectResource>> fakeUpstream)
    {
        var openRouterKey = Environment.GetEnvironmentVariable("OPENROUTER_API_KEY");
        var anthropicKey = Environment.GetEnvironmentVariable("ANTHROPIC_API_KEY");
        var llamaBase = Environment.GetEnvironmentVariable("LLAMA_CPP_BASE");
        var strict = !DeploymentSecrets.UsesDevelopmentDefaults(builder);
        IResourceBuilder<ProjectResource>? fake = null;
        IResourceBuilder<ProjectResource> Fake() => fake ??= fakeUpstream();

        if (!string.IsNullOrEmpty(openRouterKey) || strict)
        {
            builder.Configuration["Parameters:openrouter-api-key"] ??= openRouterKey;
            api.WithEnvironment("Gateway__Providers__openrouter__ApiKey", builder.AddParameter("openrouter-api-key", secret: true));
        }
        else
        {
            api.WithEnvironment("Gateway__Providers__openrouter__BaseUrl", ReferenceExpression.Create($"{Fake().GetEndpoint("http")}/openai/v1"));
        }

        if (!string.IsNullOrEmpty(anthropicKey) || strict)
        {
            builder.Configuration["Parameters:anthropic-api-key"] ??= anthropicKey;
            api.WithEnvironment("Gateway__Providers__anthropic__ApiKey", builder.AddParameter("anthropic-api-key", secret: true));
        }
        else
        {
            api.WithEnvironment("Gateway__Providers__anthropic__BaseUrl", ReferenceExpression.Create($"{Fake().GetEndpoint("http")}/anthropic"));
            api.WithEnvironment("Gateway__Providers__anthropic__ApiKey", "sk-ant-fake-upstream");
        }

        if (!string.IsNullOrEmpty(llamaBase))
        {
            api.WithEnvironment("Gateway__Providers__llamacpp__BaseUrl", llamaBase);
        }
        else if (!strict)
        {
            api.WithEnvironment("Gateway__Providers__llamacpp__BaseUrl", ReferenceExpression.Create($"{Fake().GetEndpoint("http")}/llamacpp"));
        }

        if (fake is not null)
        {
            api.WaitFor(fake);
        }
        return api;
    }
}
