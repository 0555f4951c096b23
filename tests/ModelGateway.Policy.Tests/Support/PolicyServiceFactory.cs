using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace ModelGateway.Policy.Tests.Support;

/// <summary>The Policy service in process, with known keys, optionally pointed at an OPA and a fake clock.</summary>
public class PolicyServiceFactory(Uri? opaUrl = null, FakeTimeProvider? time = null, string environment = "Development", bool withKeys = true)
    : WebApplicationFactory<Program>
{
    public const string AdminKey = "test-admin-key";
    public const string ServiceKey = "test-service-key";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment(environment);
        if (withKeys)
        {
            builder.UseSetting("Policy:AdminKey", AdminKey);
            builder.UseSetting("Policy:ServiceKey", ServiceKey);
        }

        if (opaUrl is not null)
        {
            builder.UseSetting("Policy:Opa:Url", opaUrl.ToString());
            // The production default (250 ms) is too tight for a first, JIT-cold call on a loaded 2-core CI machine;
            // the timeout tests delay their fake OPA far beyond this.
            builder.UseSetting("Policy:Opa:Timeout", "00:00:02");
        }

        if (time is not null)
        {
            builder.ConfigureTestServices(services =>
            {
                services.RemoveAll<TimeProvider>();
                services.AddSingleton<TimeProvider>(time);
            });
        }
    }
}

/// <summary>Class fixture: the service with keys and no OPA.</summary>
public sealed class PolicyServiceFactoryWithoutOpa : PolicyServiceFactory;
